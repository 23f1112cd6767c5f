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

// Nothing in the first piece, the whole block in the second (the stacked backward's block where no hop
// needs hiding first).
inline OwnSplit all_in_second(int64_t batch, int64_t lkv) {
  OwnSplit s;
  s.second = {0, batch, 0, lkv};
  s.along_kv = true;
  return s;
}

// Splits the batch when there are several (disjoint outputs, contiguous in every tensor), else the
// visual rows, at `first_share` of the work. Long visual shards split on a 128-row tile boundary. Where
// the kernel covers `wave_rows` visual rows with one CTA on every SM (0: unknown), the first piece ends on
// a whole wave: a piece that spills a few tiles into one more wave pays for all of it (2/3 of a 16K-row
// shard at 8 kv heads on 132 SMs: 6 waves and 3 where the block whole takes 8).
inline OwnSplit split_own_block(int64_t batch, int64_t lkv, double first_share, double wave_rows = 0) {
  const double share = std::clamp(std::isfinite(first_share) ? first_share : 0.5, 0.0, 1.0);
  OwnSplit s;
  if (batch >= 2) {
    const int64_t b0 = std::clamp<int64_t>(std::llround(share * batch), 1, batch - 1);
    s.first = {0, b0, 0, lkv};
    s.second = {b0, batch - b0, 0, lkv};
    return s;
  }
  const int64_t tile = lkv >= 1024 ? 128 : 1;
  int64_t k0 = std::min<int64_t>(lkv, std::llround(share * lkv / tile) * tile);
  if (wave_rows >= tile && lkv > wave_rows) {
    const double waves = static_cast<double>(lkv) / wave_rows;
    const int64_t k = std::clamp<int64_t>(std::llround(share * waves), 1, static_cast<int64_t>(std::ceil(waves)) - 1);
    k0 = static_cast<int64_t>(k * wave_rows / tile) * tile;
  }
  s.first = {0, batch, 0, k0};
  s.second = {0, batch, k0, lkv - k0};
  s.along_kv = true;
  return s;
}

}  // namespace xattn
