#include "core/piece_order.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/error.h"

namespace xattn {

std::vector<PieceStep> piece_order(const std::vector<PieceJob>& jobs, int slots) {
  require(slots >= 2, ErrorCode::InvalidArgument, "copy-engine transfers need at least 2 slots");
  struct Keyed {
    size_t key;
    PieceStep step;
  };
  std::vector<Keyed> pieces;
  // The jobs of one (direction, peer) take turns, a piece each, and number their pieces in that order.
  std::map<std::pair<bool, int>, std::vector<size_t>> groups;
  for (size_t j = 0; j < jobs.size(); ++j) groups[{jobs[j].send, jobs[j].peer}].push_back(j);
  for (const auto& [dir_peer, members] : groups) {
    const size_t lag = dir_peer.first ? 0 : static_cast<size_t>(slots) - 1;
    size_t number = 0;
    for (size_t r = 0, left = members.size(); left > 0; ++r) {
      left = 0;
      for (size_t j : members) {
        if (r >= jobs[j].pieces) continue;
        pieces.push_back({++number + lag, {j, r}});
        left += r + 1 < jobs[j].pieces;
      }
    }
  }
  std::stable_sort(pieces.begin(), pieces.end(), [](const Keyed& a, const Keyed& b) { return a.key < b.key; });
  std::vector<PieceStep> order;
  order.reserve(pieces.size());
  for (const Keyed& k : pieces) order.push_back(k.step);
  return order;
}

}  // namespace xattn
