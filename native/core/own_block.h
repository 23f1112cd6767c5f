// LV-XAttn's owner computes its own block in two pieces: the first while its text block sets off around
// the ring, the second while the other ranks' results for that block come home. Both end hops of the
// ring then overlap compute, which is what keeps LV-XAttn at its no-communication bound at P = 2.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace xattn {

struct OwnPiece {
  int64_t batch_begin = 0, batches = 0;  // batches [batch_begin, batch_begin + batches)
  int64_t kv_begin = 0, kv_rows = 0;     // this rank's visual rows [kv_begin, kv_begin + kv_rows)
  bool empty() const { return batches == 0 || kv_rows == 0; }
};

struct OwnSplit {
  OwnPiece first, second;
  bool along_kv = false;  // both pieces cover every text row (partial results to combine)
};

// The whole block as the first piece, the second empty: for links so fast that the split costs more
// than the hops it hides.
inline OwnSplit whole_block(int64_t batch, int64_t lkv) {
  OwnSplit s;
  s.first = {0, batch, 0, lkv};
  return s;
}

// Splits the batch when there are several (disjoint outputs, contiguous in every tensor), else the
// visual rows, at `first_share` of the work. Long visual shards split on a 128-row tile boundary.
inline OwnSplit split_own_block(int64_t batch, int64_t lkv, double first_share) {
  const double share = std::clamp(std::isfinite(first_share) ? first_share : 0.5, 0.0, 1.0);
  OwnSplit s;
  if (batch >= 2) {
    const int64_t b0 = std::clamp<int64_t>(std::llround(share * batch), 1, batch - 1);
    s.first = {0, b0, 0, lkv};
    s.second = {b0, batch - b0, 0, lkv};
    return s;
  }
  const int64_t tile = lkv >= 1024 ? 128 : 1;
  const int64_t k0 = std::min<int64_t>(lkv, std::llround(share * lkv / tile) * tile);
  s.first = {0, batch, 0, k0};
  s.second = {0, batch, k0, lkv - k0};
  s.along_kv = true;
  return s;
}

}  // namespace xattn
