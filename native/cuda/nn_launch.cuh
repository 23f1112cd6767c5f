// Shared by the model-op kernels: grid sizing, dtype dispatch to a generic lambda, and fixed-order
// (deterministic) warp and block sums in fp64.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"

namespace xattn::cuda::nn {

constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements (the grid size never changes a result).
inline unsigned grid_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}
// Grid with one warp per row.
inline unsigned warp_grid(int64_t rows) { return static_cast<unsigned>((rows * 32 + kThreads - 1) / kThreads); }

// Calls f(T{}) with T the CUDA type of dtype t.
template <typename F>
void with_type(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); break;
    case DType::BF16: f(__nv_bfloat16{}); break;
    default: f(__half{}); break;
  }
}

// Butterfly sum over the 32 lanes: every lane gets the total, always added in the same order.
__device__ __forceinline__ double warp_sum_f64(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the kThreads threads of a block (all must call it); the total is valid in thread 0.
__device__ __forceinline__ double block_sum_f64(double v) {
  __shared__ double warp_part[kThreads / 32];
  v = warp_sum_f64(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_part[w];
  return total;
}

}  // namespace xattn::cuda::nn
