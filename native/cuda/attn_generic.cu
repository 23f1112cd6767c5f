// Generic attention kernels: any storage dtype (float32 too), any head_dim <= 256, any alignment.
// One warp per query row (forward, dQ) or per KV row (dK/dV); plain fp32 math, no tensor cores. This is
// the slow path for shapes the tensor-core kernels do not cover.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/mma_ptx.cuh"
#include "cuda/scalar_io.cuh"
#include "cuda/warp_rows.cuh"

namespace xattn::cuda {
namespace {

constexpr int kMaxChunks = 8;  // head_dim <= 32 * 8
constexpr int kThreads = 128;

__device__ __forceinline__ void local_range(const AttnGeom& g, int64_t b, int64_t i, int64_t& beg, int64_t& end) {
  beg = 0;
  end = g.lkv;
  if (!g.mask) return;
  const int32_t* m = g.mask + (b * g.lq + i) * 2;
  beg = max(static_cast<int64_t>(0), static_cast<int64_t>(m[0]) - g.kv_offset);
  end = min(g.lkv, static_cast<int64_t>(m[1]) - g.kv_offset);
}

template <typename T>
__device__ __forceinline__ float dot_row(const float (&x)[kMaxChunks], const T* row, int D, int lane) {
  float acc = 0.f;
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int d = lane + 32 * c;
    if (d < D) acc += x[c] * to_f32(row[d]);
  }
  return warp_sum(acc);
}

template <typename T>
__device__ __forceinline__ void load_row(float (&x)[kMaxChunks], const T* row, int D, int lane, float mul) {
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int d = lane + 32 * c;
    x[c] = d < D ? to_f32(row[d]) * mul : 0.f;
  }
}

template <typename T>
__global__ void fwd_generic_kernel(AttnGeom g, FwdArgs a) {
  WarpRow r;
  if (!warp_row(g.batch * g.lq * g.heads, g.lq, g.heads, r)) return;
  const int64_t w = r.w, i = r.i, b = r.b;
  const int lane = r.lane, D = g.head_dim, h = r.h, hk = h / g.group;
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  float qv[kMaxChunks], acc[kMaxChunks];
  load_row(qv, static_cast<const T*>(a.q) + w * D, D, lane, g.scale);
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) acc[c] = 0.f;
  int64_t beg, end;
  local_range(g, b, i, beg, end);
  float m = -INFINITY, l = 0.f;
  for (int64_t j = beg; j < end; ++j) {
    const int64_t off = ((b * g.lkv + j) * g.kv_heads + hk) * D;
    const float s = dot_row(qv, k + off, D, lane);
    const float mn = fmaxf(m, s);
    const float corr = expf(m - mn), p = expf(s - mn);
    l = l * corr + p;
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) {
      const int d = lane + 32 * c;
      acc[c] = acc[c] * corr + (d < D ? p * to_f32(v[off + d]) : 0.f);
    }
    m = mn;
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int d = lane + 32 * c;
    if (d < D) a.o[w * D + d] = acc[c] * inv;
  }
  if (lane == 0) a.lse[r.stat] = l > 0.f ? m + logf(l) : -INFINITY;
}

template <typename T>
__global__ void dq_generic_kernel(AttnGeom g, BwdArgs a) {
  WarpRow r;
  if (!warp_row(g.batch * g.lq * g.heads, g.lq, g.heads, r)) return;
  const int64_t w = r.w, i = r.i, b = r.b;
  const int lane = r.lane, D = g.head_dim, h = r.h, hk = h / g.group;
  const float lse = a.lse[r.stat], dr = a.drow[r.stat];
  if (lse == -INFINITY) return;
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  float qv[kMaxChunks], ov[kMaxChunks], acc[kMaxChunks];
  load_row(qv, static_cast<const T*>(a.q) + w * D, D, lane, g.scale);
  load_row(ov, static_cast<const T*>(a.dout) + w * D, D, lane, 1.f);
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) acc[c] = 0.f;
  int64_t beg, end;
  local_range(g, b, i, beg, end);
  for (int64_t j = beg; j < end; ++j) {
    const int64_t off = ((b * g.lkv + j) * g.kv_heads + hk) * D;
    const float p = expf(dot_row(qv, k + off, D, lane) - lse);
    const float ds = p * (dot_row(ov, v + off, D, lane) - dr);
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < D) acc[c] += ds * to_f32(k[off + d]);
    }
  }
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int d = lane + 32 * c;
    if (d < D) a.dq[w * D + d] += g.scale * acc[c];
  }
}

template <typename T>
__global__ void dkdv_generic_kernel(AttnGeom g, BwdArgs a) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b, j, hk)
  const int lane = threadIdx.x & 31, D = g.head_dim;
  if (w >= g.batch * g.lkv * g.kv_heads) return;
  const int hk = static_cast<int>(w % g.kv_heads);
  const int64_t j = (w / g.kv_heads) % g.lkv, b = w / (g.kv_heads * g.lkv);
  const T* q = static_cast<const T*>(a.q);
  const T* dout = static_cast<const T*>(a.dout);
  float kv[kMaxChunks], vv[kMaxChunks], dk[kMaxChunks], dv[kMaxChunks];
  load_row(kv, static_cast<const T*>(a.k) + w * D, D, lane, g.scale);
  load_row(vv, static_cast<const T*>(a.v) + w * D, D, lane, 1.f);
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) dk[c] = dv[c] = 0.f;
  for (int64_t i = 0; i < g.lq; ++i) {
    int64_t beg, end;
    local_range(g, b, i, beg, end);
    if (j < beg || j >= end) continue;
    for (int gg = 0; gg < g.group; ++gg) {
      const int h = hk * g.group + gg;
      const int64_t st = (b * g.heads + h) * g.lq + i;
      const float lse = a.lse[st];
      if (lse == -INFINITY) continue;
      const int64_t off = ((b * g.lq + i) * g.heads + h) * D;
      const float p = expf(dot_row(kv, q + off, D, lane) - lse);
      const float ds = p * (dot_row(vv, dout + off, D, lane) - a.drow[st]);
#pragma unroll
      for (int c = 0; c < kMaxChunks; ++c) {
        const int d = lane + 32 * c;
        if (d < D) {
          dv[c] += p * to_f32(dout[off + d]);
          dk[c] += ds * to_f32(q[off + d]);
        }
      }
    }
  }
#pragma unroll
  for (int c = 0; c < kMaxChunks; ++c) {
    const int d = lane + 32 * c;
    if (d < D) {
      a.dk[w * D + d] += g.scale * dk[c];
      a.dv[w * D + d] += dv[c];
    }
  }
}

unsigned warp_blocks(int64_t warps) { return static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads); }

template <typename T>
void run_fwd(const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  fwd_generic_kernel<T><<<warp_blocks(g.batch * g.lq * g.heads), kThreads, 0, s>>>(g, a);
  XATTN_CUDA_LAUNCHED("attn_fwd (generic)");
}
template <typename T>
void run_bwd(const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  dq_generic_kernel<T><<<warp_blocks(g.batch * g.lq * g.heads), kThreads, 0, s>>>(g, a);
  XATTN_CUDA_LAUNCHED("attn_bwd dq (generic)");
  dkdv_generic_kernel<T><<<warp_blocks(g.batch * g.lkv * g.kv_heads), kThreads, 0, s>>>(g, a);
  XATTN_CUDA_LAUNCHED("attn_bwd dkdv (generic)");
}

}  // namespace

void generic_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  XATTN_DISPATCH_DTYPE(t, run_fwd, g, a, s);
}
void generic_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  XATTN_DISPATCH_DTYPE(t, run_bwd, g, a, s);
}

}  // namespace xattn::cuda
