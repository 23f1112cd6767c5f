// Warp-per-row kernels over the query rows w = (b * lq + i) * H + h of a [B, lq, H, D] tensor.
#pragma once
#include <cstdint>

namespace xattn::cuda {

struct WarpRow {
  int64_t w, i, b;
  int64_t stat;  // index of this row in [B, H, lq] (LSE, D)
  int h, lane;
};

// Fills r for the calling warp; false when the warp is past the last of `rows` rows.
__device__ __forceinline__ bool warp_row(int64_t rows, int64_t lq, int heads, WarpRow& r) {
  r.w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  r.lane = threadIdx.x & 31;
  if (r.w >= rows) return false;
  r.h = static_cast<int>(r.w % heads);
  r.i = (r.w / heads) % lq;
  r.b = r.w / (heads * lq);
  r.stat = (r.b * heads + r.h) * lq + r.i;
  return true;
}

}  // namespace xattn::cuda
