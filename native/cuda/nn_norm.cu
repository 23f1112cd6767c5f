// RMSNorm forward and backward. One warp per row for the row statistics (fp64 sums, as on the CPU); the
// weight gradient sums over rows in fixed row chunks (count from the row count alone), then adds the chunk
// partials in chunk order, so dw is the same bits on every run.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/nn_kernels.h"
#include "cuda/nn_launch.cuh"
#include "cuda/scalar_io.cuh"

namespace xattn::cuda::nn {
namespace {

__device__ __forceinline__ bool row_of_warp(int64_t rows, int64_t& r, int& lane) {
  r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  lane = threadIdx.x & 31;
  return r < rows;  // uniform across the warp, so the shuffles below see all 32 lanes
}

template <typename T>
__global__ void rmsnorm_fwd_kernel(int64_t rows, int64_t n, float eps, const float* x, const float* w, T* y,
                                   float* rstd) {
  int64_t r;
  int lane;
  if (!row_of_warp(rows, r, lane)) return;
  const float* xr = x + r * n;
  double ss = 0.0;
  for (int64_t j = lane; j < n; j += 32) ss += static_cast<double>(xr[j]) * xr[j];
  ss = warp_sum_f64(ss);
  const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(n) + static_cast<double>(eps)));
  if (lane == 0) rstd[r] = s;
  T* yr = y + r * n;
  for (int64_t j = lane; j < n; j += 32) yr[j] = from_f32<T>(xr[j] * s * w[j]);
}

template <typename T>
__global__ void rmsnorm_dx_kernel(int64_t rows, int64_t n, const float* x, const float* w, const float* rstd,
                                  const float* dy, T* dx, bool accumulate) {
  int64_t r;
  int lane;
  if (!row_of_warp(rows, r, lane)) return;
  const float* xr = x + r * n;
  const float* g = dy + r * n;
  const float s = rstd[r];
  double dot = 0.0;
  for (int64_t j = lane; j < n; j += 32) dot += static_cast<double>(w[j] * g[j]) * (xr[j] * s);
  dot = warp_sum_f64(dot);
  const float mean = static_cast<float>(dot / static_cast<double>(n));
  T* out = dx + r * n;
  for (int64_t j = lane; j < n; j += 32) {
    const float xhat = xr[j] * s;
    const float v = s * (w[j] * g[j] - xhat * mean);
    out[j] = from_f32<T>(accumulate ? to_f32(out[j]) + v : v);
  }
}

// part[c, j] = sum over the rows of chunk c of dy * xhat (thread j walks its column down the chunk).
__global__ void rmsnorm_dw_part_kernel(int64_t rows, int64_t n, int64_t chunk_rows, const float* x,
                                       const float* rstd, const float* dy, float* part) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += dy[r * n + j] * (x[r * n + j] * rstd[r]);
  part[blockIdx.y * n + j] = acc;
}

__global__ void rmsnorm_dw_finish_kernel(int64_t n, int64_t chunks, const float* part, float* dw) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = dw[j];
    for (int64_t c = 0; c < chunks; ++c) acc += part[c * n + j];
    dw[j] = acc;
  }
}

// Rows per dw chunk: enough chunks to fill the GPU for narrow rows (per-head norms), at most 256.
int64_t dw_chunk_rows(int64_t rows) {
  int64_t chunks = rows / 32;
  chunks = chunks < 1 ? 1 : chunks > 256 ? 256 : chunks;
  return (rows + chunks - 1) / chunks;
}

}  // namespace

void rmsnorm_fwd(int64_t rows, int64_t n, float eps, const float* x, const float* w, void* y, DType y_dtype,
                 float* rstd, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  with_type(y_dtype, [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_fwd_kernel<T><<<warp_grid(rows), kThreads, 0, s>>>(rows, n, eps, x, w, static_cast<T*>(y), rstd);
  });
  XATTN_CUDA_LAUNCHED("rmsnorm_fwd");
}

void rmsnorm_dx(int64_t rows, int64_t n, const float* x, const float* w, const float* rstd, const float* dy,
                void* dx, DType dx_dtype, bool accumulate, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  with_type(dx_dtype, [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_dx_kernel<T><<<warp_grid(rows), kThreads, 0, s>>>(rows, n, x, w, rstd, dy, static_cast<T*>(dx), accumulate);
  });
  XATTN_CUDA_LAUNCHED("rmsnorm_bwd dx");
}

int64_t rmsnorm_dw_chunks(int64_t rows) {
  if (rows <= 0) return 0;
  const int64_t per = dw_chunk_rows(rows);
  return (rows + per - 1) / per;
}

void rmsnorm_dw(int64_t rows, int64_t n, const float* x, const float* rstd, const float* dy, float* dw,
                float* dw_scratch, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  const int64_t chunks = rmsnorm_dw_chunks(rows);
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
  rmsnorm_dw_part_kernel<<<grid, kThreads, 0, s>>>(rows, n, dw_chunk_rows(rows), x, rstd, dy, dw_scratch);
  XATTN_CUDA_LAUNCHED("rmsnorm_bwd dw");
  rmsnorm_dw_finish_kernel<<<grid_for(n), kThreads, 0, s>>>(n, chunks, dw_scratch, dw);
  XATTN_CUDA_LAUNCHED("rmsnorm_bwd dw");
}

}  // namespace xattn::cuda::nn
