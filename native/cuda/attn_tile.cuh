// Tile loaders and mask helpers shared by the tensor-core forward and backward kernels.
#pragma once
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/kernels.h"
#include "cuda/mma_ptx.cuh"

namespace xattn::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Runs a tile's element-wise code f in one of two instantiations behind a warp-uniform branch:
// f(std::false_type) where every row of the warp sees the whole tile, f(std::true_type) with the per-element
// bounds tests. Written as one loop with a runtime flag, the compiler if-converts the tests into every
// element of every tile (four ALU operations each, the busiest pipe of the softmax).
template <typename F>
__device__ __forceinline__ void with_bounds_tests(bool needed, F&& f) {
  if (needed)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// Packed row r of KV head hk -> element offset of its query row in a [B, lq, H, D] tensor.
__device__ __forceinline__ int64_t packed_row_offset(const AttnGeom& g, int b, int hk, int64_t r) {
  int64_t i = r / g.group;
  int h = hk * g.group + static_cast<int>(r % g.group);
  return ((b * g.lq + i) * g.heads + h) * static_cast<int64_t>(g.head_dim);
}
// Packed row r = i * group + j: query position i, head j of the KV head's group. Kernels that only run
// groups that are powers of two (sm90: 64 % group == 0) split with shifts, not a 64-bit division.
struct PackedRow {
  int64_t i;
  int j;
};
template <bool kPow2Group = false>
__device__ __forceinline__ PackedRow split_packed_row(const AttnGeom& g, int64_t r) {
  if constexpr (kPow2Group) return {r >> (__ffs(g.group) - 1), static_cast<int>(r & (g.group - 1))};
  else return {r / g.group, static_cast<int>(r % g.group)};
}
// Offset of LSE/D for a packed row ([B, H, lq]).
__device__ __forceinline__ int64_t packed_row_stat(const AttnGeom& g, int b, int hk, PackedRow p) {
  return (static_cast<int64_t>(b) * g.heads + hk * g.group + p.j) * g.lq + p.i;
}
__device__ __forceinline__ int64_t packed_row_stat(const AttnGeom& g, int b, int hk, int64_t r) {
  return packed_row_stat(g, b, hk, split_packed_row(g, r));
}
// Visible KV range of a packed row in block-local coordinates, clamped to [0, lkv]; empty for rows past
// the end.
__device__ __forceinline__ void packed_row_range(const AttnGeom& g, int b, PackedRow p, int& beg, int& end) {
  if (p.i >= g.lq) { beg = end = 0; return; }
  if (!g.mask) { beg = 0; end = static_cast<int>(g.lkv); return; }
  const int32_t* m = g.mask + (b * g.lq + p.i) * 2;
  int64_t lo = static_cast<int64_t>(m[0]) - g.kv_offset, hi = static_cast<int64_t>(m[1]) - g.kv_offset;
  lo = lo < 0 ? 0 : (lo > g.lkv ? g.lkv : lo);
  hi = hi < 0 ? 0 : (hi > g.lkv ? g.lkv : hi);
  beg = static_cast<int>(lo);
  end = static_cast<int>(hi > lo ? hi : lo);
}
__device__ __forceinline__ void packed_row_range(const AttnGeom& g, int b, int64_t r, int& beg, int& end) {
  packed_row_range(g, b, split_packed_row(g, r), beg, end);
}

// cp.async a [ROWS][D] tile of packed query rows starting at r0 (rows past the end are zero-filled).
template <typename T, int D, int ROWS, int NT>
__device__ __forceinline__ void load_packed_tile(T* sm, const T* src, const AttnGeom& g, int b, int hk, int64_t r0,
                                                 int tid) {
  constexpr int CH = D / 8;
  const int64_t rows = g.lq * g.group;
#pragma unroll 4
  for (int idx = tid; idx < ROWS * CH; idx += NT) {
    int r = idx / CH, c = idx % CH;
    bool valid = r0 + r < rows;
    const T* p = valid ? src + packed_row_offset(g, b, hk, r0 + r) + c * 8 : src;
    cp_async16(smem_addr(sm + swz<D>(r, c * 8)), p, valid);
  }
}

// cp.async a [ROWS][D] tile of K or V rows j0.. of KV head hk (rows past lkv are zero-filled).
template <typename T, int D, int ROWS, int NT>
__device__ __forceinline__ void load_kv_tile(T* sm, const T* src, const AttnGeom& g, int b, int hk, int64_t j0,
                                             int tid) {
  constexpr int CH = D / 8;
#pragma unroll 4
  for (int idx = tid; idx < ROWS * CH; idx += NT) {
    int r = idx / CH, c = idx % CH;
    int64_t j = j0 + r;
    bool valid = j < g.lkv;
    const T* p = valid ? src + ((b * g.lkv + j) * g.kv_heads + hk) * static_cast<int64_t>(D) + c * 8 : src;
    cp_async16(smem_addr(sm + swz<D>(r, c * 8)), p, valid);
  }
}

// K and V tiles of the same rows into one buffer slot.
template <typename T, int D, int BN, int NT>
__device__ __forceinline__ void load_kv_pair(T* Kslot, T* Vslot, const T* k, const T* v, const AttnGeom& g, int b,
                                             int hk, int tile, int tid) {
  load_kv_tile<T, D, BN, NT>(Kslot, k, g, b, hk, static_cast<int64_t>(tile) * BN, tid);
  load_kv_tile<T, D, BN, NT>(Vslot, v, g, b, hk, static_cast<int64_t>(tile) * BN, tid);
}

// Double-buffered K/V pipeline step: starts loading tile t+1 (if any) into the other slot, then waits until
// tile t (in slot buf) has landed and is visible to the whole CTA.
template <typename T, int D, int BN, int NT>
__device__ __forceinline__ void kv_pipeline_step(T* Ks, T* Vs, const T* k, const T* v, const AttnGeom& g, int b,
                                                 int hk, int t, int te, int buf, int tid) {
  if (t + 1 < te) {
    load_kv_pair<T, D, BN, NT>(Ks + (buf ^ 1) * BN * D, Vs + (buf ^ 1) * BN * D, k, v, g, b, hk, t + 1, tid);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// Union [lo, hi) of the visible ranges of a CTA's packed rows, to skip KV tiles nobody sees.
template <int NT>
__device__ __forceinline__ void cta_visible_union(int beg_a, int end_a, int beg_b, int end_b, int& lo, int& hi) {
  __shared__ int s_lo, s_hi;
  if (threadIdx.x == 0) { s_lo = INT_MAX; s_hi = 0; }
  __syncthreads();
  if (beg_a < end_a) { atomicMin(&s_lo, beg_a); atomicMax(&s_hi, end_a); }
  if (beg_b < end_b) { atomicMin(&s_lo, beg_b); atomicMax(&s_hi, end_b); }
  __syncthreads();
  lo = s_lo;
  hi = s_hi;
  __syncthreads();
}

}  // namespace xattn::cuda
