// Element-wise and reduction kernels: LSE merge, the partials' float16 wire form, split-KV combine, adds (dQ split reduce), row_dot, casts,
// fill.
#include <cfloat>
#include <cmath>

#include "core/partial_wire.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/mma_ptx.cuh"
#include "cuda/scalar_io.cuh"
#include "cuda/warp_rows.cuh"

namespace xattn::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535u * 16 ? (b > 0 ? b : 1) : 65535u * 16);
}
unsigned warp_blocks(int64_t warps) { return static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads); }

// lse_merge's rule for one row: the merged LSE and each side's weight (0 for a side that saw nothing, which
// is then not read: -inf on both sides keeps O = 0, LSE = -inf).
struct MergeWeights {
  float acc, part, lse;
};

__device__ __forceinline__ MergeWeights merge_weights(float la, float lp) {
  const float mx = fmaxf(la, lp);
  if (mx == -INFINITY) return {0.f, 0.f, -INFINITY};
  const float ea = expf(la - mx), ep = expf(lp - mx), sum = ea + ep;
  return {ea / sum, ep / sum, mx + logf(sum)};
}

__device__ __forceinline__ float merged(const MergeWeights& w, float a, float p) {
  return (w.acc > 0.f ? w.acc * a : 0.f) + (w.part > 0.f ? w.part * p : 0.f);
}

// One warp per (b, i, h) row: both sides' weights are read before the row is rewritten.
__global__ void lse_merge_kernel(int64_t rows, int64_t lq, int heads, int D, float* acc_o, float* acc_lse,
                                 const float* part_o, const float* part_lse) {
  WarpRow r;
  if (!warp_row(rows, lq, heads, r)) return;
  const MergeWeights w = merge_weights(acc_lse[r.stat], part_lse[r.stat]);
  float* o = acc_o + r.w * D;
  const float* p = part_o + r.w * D;
  for (int d = r.lane; d < D; d += 32) o[d] = merged(w, o[d], p[d]);
  if (r.lane == 0) acc_lse[r.stat] = w.lse;
}

// One warp per (b, i, h) row of the n rows that came home (Backend::merge_final): the accumulator's row r0 + i
// of lq, merged with the part's row i (float32, or float16 times its scale), stored once in T.
template <typename T>
__global__ void merge_final_kernel(int64_t rows, int64_t n, int64_t lq, int64_t r0, int heads, int D, const float* acc_o,
                                   const float* acc_lse, HomePartial part, T* out_o, float* out_lse) {
  WarpRow r;
  if (!warp_row(rows, n, heads, r)) return;
  const int64_t w = (r.b * lq + r0 + r.i) * heads + r.h, st = (r.b * heads + r.h) * lq + r0 + r.i;
  const MergeWeights mw = merge_weights(acc_lse[st], part.lse[r.stat]);
  const auto* wire = reinterpret_cast<const __half*>(part.wire);
  const float s = wire ? part.scale[r.stat] : 0.f;
  for (int d = r.lane; d < D; d += 32) {
    const float p = wire ? __half2float(wire[r.w * D + d]) * s : part.o[r.w * D + d];
    out_o[w * D + d] = from_f32<T>(merged(mw, acc_o[w * D + d], p));
  }
  if (r.lane == 0) out_lse[st] = mw.lse;
}

// One warp per (b, i, h) row: the row's largest |value| sets its power-of-two scale (partial_wire.h).
__global__ void partial_to_wire_kernel(int64_t rows, int64_t lq, int heads, int D, const float* o, __half* wire,
                                       float* scale) {
  WarpRow r;
  if (!warp_row(rows, lq, heads, r)) return;
  const float* row = o + r.w * D;
  float row_max = 0.f;  // inf where the row holds inf or NaN (they travel unscaled)
  for (int d = r.lane; d < D; d += 32) {
    const float a = fabsf(row[d]);
    row_max = a <= FLT_MAX ? fmaxf(row_max, a) : INFINITY;
  }
  for (int off = 16; off > 0; off >>= 1) row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, off));
  const int e = partial_wire_exponent(row_max);
  for (int d = r.lane; d < D; d += 32) wire[r.w * D + d] = __float2half_rn(ldexpf(row[d], -e));
  if (r.lane == 0) scale[r.stat] = ldexpf(1.f, e);
}

__global__ void partial_from_wire_kernel(int64_t rows, int64_t lq, int heads, int D, const __half* wire,
                                         const float* scale, float* o) {
  WarpRow r;
  if (!warp_row(rows, lq, heads, r)) return;
  const float s = scale[r.stat];
  for (int d = r.lane; d < D; d += 32) o[r.w * D + d] = __half2float(wire[r.w * D + d]) * s;
}

// Split-KV forward epilogue: O = sum_s exp(lse_s - lse) O_s, lse = log sum_s exp(lse_s).
__global__ void combine_kernel(int64_t rows, int64_t lq, int heads, int D, int splits, const float* o_part,
                               const float* lse_part, float* o, float* lse_out) {
  WarpRow r;
  if (!warp_row(rows, lq, heads, r)) return;
  const int64_t w = r.w, st = r.stat;
  const int lane = r.lane;
  const int64_t stat_stride = rows, o_stride = rows * D;  // rows = B*lq*H
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse_part[s * stat_stride + st]);
  float sum = 0.f;
  if (mx != -INFINITY)
    for (int s = 0; s < splits; ++s) sum += expf(lse_part[s * stat_stride + st] - mx);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  for (int d = lane; d < D; d += 32) {
    float acc = 0.f;
    if (sum > 0.f)
      for (int s = 0; s < splits; ++s) {
        const float ls = lse_part[s * stat_stride + st];
        if (ls != -INFINITY) acc += expf(ls - mx) * inv * o_part[s * o_stride + w * D + d];
      }
    o[w * D + d] = acc;
  }
  if (lane == 0) lse_out[st] = sum > 0.f ? mx + logf(sum) : -INFINITY;
}

__global__ void add_parts_kernel(size_t n, int parts, const float* src, float* dst) {
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float acc = dst[e];
    for (int p = 0; p < parts; ++p) acc += src[p * n + e];
    dst[e] = acc;
  }
}

template <typename T>
__global__ void row_dot_kernel(int64_t rows, int64_t lq, int heads, int D, const T* dout, const T* out, float* drow) {
  WarpRow r;
  if (!warp_row(rows, lq, heads, r)) return;
  float acc = 0.f;
  for (int d = r.lane; d < D; d += 32) acc += to_f32(dout[r.w * D + d]) * to_f32(out[r.w * D + d]);
  acc = warp_sum(acc);
  if (r.lane == 0) drow[r.stat] = acc;
}

template <typename T>
__global__ void cast_from_kernel(const float* src, T* dst, size_t n) {
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[e] = from_f32<T>(src[e]);
}
template <typename T>
__global__ void cast_to_kernel(const T* src, float* dst, size_t n) {
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[e] = to_f32(src[e]);
}
__global__ void fill_kernel(float* p, size_t n, float value) {
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[e] = value;
}

template <typename T>
void run_row_dot(int64_t batch, int64_t lq, int heads, int D, const void* dout, const void* out, float* drow,
                 cudaStream_t s) {
  const int64_t rows = batch * lq * heads;
  row_dot_kernel<T><<<warp_blocks(rows), kThreads, 0, s>>>(rows, lq, heads, D, static_cast<const T*>(dout),
                                                           static_cast<const T*>(out), drow);
  XATTN_CUDA_LAUNCHED("row_dot");
}
template <typename T>
void run_cast_from(const float* src, void* dst, size_t n, cudaStream_t s) {
  cast_from_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(src, static_cast<T*>(dst), n);
  XATTN_CUDA_LAUNCHED("cast_from_f32");
}
template <typename T>
void run_cast_to(const void* src, float* dst, size_t n, cudaStream_t s) {
  cast_to_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<const T*>(src), dst, n);
  XATTN_CUDA_LAUNCHED("cast_to_f32");
}

}  // namespace

void lse_merge(int64_t batch, int64_t lq, int heads, int head_dim, float* acc_o, float* acc_lse,
               const float* part_o, const float* part_lse, cudaStream_t s) {
  const int64_t rows = batch * lq * heads;
  if (rows == 0) return;
  lse_merge_kernel<<<warp_blocks(rows), kThreads, 0, s>>>(rows, lq, heads, head_dim, acc_o, acc_lse, part_o, part_lse);
  XATTN_CUDA_LAUNCHED("lse_merge");
}

namespace {
template <typename T>
void launch_merge_final(int64_t rows, int64_t n, int64_t lq, int64_t r0, int heads, int D, const float* acc_o,
                        const float* acc_lse, const HomePartial& part, void* out_o, float* out_lse, cudaStream_t s) {
  merge_final_kernel<T><<<warp_blocks(rows), kThreads, 0, s>>>(rows, n, lq, r0, heads, D, acc_o, acc_lse, part,
                                                                static_cast<T*>(out_o), out_lse);
}
}  // namespace

void merge_final(DType t, int64_t batch, int64_t lq, int64_t r0, int64_t n, int heads, int head_dim, const float* acc_o,
                 const float* acc_lse, const HomePartial& part, void* out_o, float* out_lse, cudaStream_t s) {
  const int64_t rows = batch * n * heads;
  if (rows == 0) return;
  XATTN_DISPATCH_DTYPE(t, launch_merge_final, rows, n, lq, r0, heads, head_dim, acc_o, acc_lse, part, out_o, out_lse, s);
  XATTN_CUDA_LAUNCHED("merge_final");
}

void partial_to_wire(int64_t batch, int64_t lq, int heads, int head_dim, const float* o, uint16_t* wire,
                     float* scale, cudaStream_t s) {
  const int64_t rows = batch * lq * heads;
  if (rows == 0) return;
  partial_to_wire_kernel<<<warp_blocks(rows), kThreads, 0, s>>>(rows, lq, heads, head_dim, o,
                                                                 reinterpret_cast<__half*>(wire), scale);
  XATTN_CUDA_LAUNCHED("partial_to_wire");
}

void partial_from_wire(int64_t batch, int64_t lq, int heads, int head_dim, const uint16_t* wire, const float* scale,
                       float* o, cudaStream_t s) {
  const int64_t rows = batch * lq * heads;
  if (rows == 0) return;
  partial_from_wire_kernel<<<warp_blocks(rows), kThreads, 0, s>>>(
      rows, lq, heads, head_dim, reinterpret_cast<const __half*>(wire), scale, o);
  XATTN_CUDA_LAUNCHED("partial_from_wire");
}

void combine_fwd_splits(const AttnGeom& g, int splits, const float* o_part, const float* lse_part, float* o,
                        float* lse, cudaStream_t s) {
  const int64_t rows = g.batch * g.lq * g.heads;
  combine_kernel<<<warp_blocks(rows), kThreads, 0, s>>>(rows, g.lq, g.heads, g.head_dim, splits, o_part, lse_part,
                                                        o, lse);
  XATTN_CUDA_LAUNCHED("attn_fwd combine");
}

void add_f32_parts(size_t n, int parts, const float* src, float* dst, cudaStream_t s) {
  if (n == 0) return;
  add_parts_kernel<<<blocks_for(n / 4 + 1), kThreads, 0, s>>>(n, parts, src, dst);
  XATTN_CUDA_LAUNCHED("add_f32_parts");
}

void row_dot(DType t, int64_t batch, int64_t lq, int heads, int head_dim, const void* dout, const void* out,
             float* drow, cudaStream_t s) {
  if (batch * lq * heads == 0) return;
  XATTN_DISPATCH_DTYPE(t, run_row_dot, batch, lq, heads, head_dim, dout, out, drow, s);
}
void cast_from_f32(DType to, const float* src, void* dst, size_t n, cudaStream_t s) {
  if (n == 0) return;
  XATTN_DISPATCH_DTYPE(to, run_cast_from, src, dst, n, s);
}
void cast_to_f32(DType from, const void* src, float* dst, size_t n, cudaStream_t s) {
  if (n == 0) return;
  XATTN_DISPATCH_DTYPE(from, run_cast_to, src, dst, n, s);
}
void fill_f32(float* p, size_t n, float value, cudaStream_t s) {
  if (n == 0) return;
  if (value == 0.f && !std::signbit(value)) {  // +0.0 is all zero bits: the driver's memset runs at full bandwidth
    XATTN_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), s));
    return;
  }
  fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(p, n, value);
  XATTN_CUDA_LAUNCHED("fill_f32");
}

}  // namespace xattn::cuda
