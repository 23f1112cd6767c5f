// The visiting Q blocks of LV-XAttn forwards, kept for the backwards of the same Q tensors: such a
// backward sends only dO, LSE and D around the ring, not Q again: half of its first hop, and of all it
// sends a quarter with float32 dQ, a third with float16.
//
// Entries are keyed by the Q tensor's identity (DeviceTensor::id, never reused, unlike an address). The
// ring's transfers must pair up, so every rank has to find or miss alike: every rank runs the same calls
// on its shards of the same tensors, and entries come and go in the same order everywhere (a forward
// replaces its tensor's entry, the oldest goes beyond the cap, a backward takes its entry).
// Storage comes and goes on the backend's stream order: a forward's copies into recycled blocks are
// enqueued after the reads of the backward that gave them back.
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace xattn {

// One forward's visiting blocks, for ring steps 1..P-1 in their natural layout [B, rows, H, D].
struct KeptBlocks {
  KeptBlocks(Backend& be, const std::vector<size_t>& bytes) : be(be), bytes(bytes) {
    for (size_t b : bytes) blocks.push_back(be.alloc(b ? b : 1));
  }
  ~KeptBlocks() {
    for (void* p : blocks) be.free(p);  // stream-ordered where the backend enqueues: after their readers
  }
  KeptBlocks(const KeptBlocks&) = delete;
  KeptBlocks& operator=(const KeptBlocks&) = delete;
  Backend& be;
  std::vector<size_t> bytes;
  std::vector<void*> blocks;
};

class KeptQueries {
 public:
  // A `fixed` cap (set by the operator of the process, $XATTN_LV_KEEP_Q) does not rise on request.
  KeptQueries(Backend& be, size_t max_entries, bool fixed = false) : be_(be), max_(max_entries), fixed_(fixed) {}

  // Room for at least n forwards (a caller that runs n forwards before their backwards: a model's layers).
  void raise_cap(size_t n) {
    if (!fixed_) max_ = std::max(max_, n);
  }

  // Storage for the forward of q_id: its older entry, the oldest entry beyond the cap, a spare, or new
  // blocks; nullptr where keeping is off or q_id is 0 (unknown). Storage is recycled, so steady-state
  // steps allocate nothing: at most max_entries sets of blocks exist, kept, spare or being filled.
  std::unique_ptr<KeptBlocks> storage(uint64_t q_id, const std::vector<size_t>& bytes) {
    if (max_ == 0 || q_id == 0) return nullptr;
    std::unique_ptr<KeptBlocks> blocks = take(q_id);
    if (!blocks && entries_.size() >= max_) {
      blocks = std::move(entries_.front().second);
      entries_.pop_front();
    }
    if (!blocks && !spare_.empty()) {
      blocks = std::move(spare_.back());
      spare_.pop_back();
    }
    if (!blocks || blocks->bytes != bytes) blocks = std::make_unique<KeptBlocks>(be_, bytes);
    return blocks;
  }

  // Files the blocks a forward filled, for the backward of q_id (a forward that fails files nothing).
  void keep(uint64_t q_id, std::unique_ptr<KeptBlocks> blocks) {
    if (blocks) entries_.emplace_back(q_id, std::move(blocks));
  }

  // The blocks kept for q_id, handed over to the caller until it gives them back; nullptr if none.
  std::unique_ptr<KeptBlocks> take(uint64_t q_id) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->first == q_id) {
        std::unique_ptr<KeptBlocks> out = std::move(it->second);
        entries_.erase(it);
        return out;
      }
    return nullptr;
  }

  // Storage a backward is done with, for later forwards.
  void give_back(std::unique_ptr<KeptBlocks> blocks) {
    if (blocks && entries_.size() + spare_.size() < max_) spare_.push_back(std::move(blocks));
  }

 private:
  Backend& be_;
  size_t max_;
  bool fixed_;
  std::deque<std::pair<uint64_t, std::unique_ptr<KeptBlocks>>> entries_;
  std::vector<std::unique_ptr<KeptBlocks>> spare_;
};

}  // namespace xattn
