// Tensor-core backward (mma.sync m16n8k16, sm_80+), accumulating (+=) into float32 dQ/dK/dV.
// Two deterministic kernels, no atomics:
//  - dK/dV: KV-stationary. A CTA owns 16*NW KV rows of one KV head and walks every packed query row
//    (all GQA heads), recomputing P^T = exp(S^T - LSE) and dS^T = P^T * (dP^T - D).
//  - dQ: Q-stationary (like the forward), split over KV for short Lq: each split writes a partial that a
//    reduce kernel adds into dQ, so short-Lq shards never contend on a few dQ rows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/error.h"
#include "cuda/attn_tile.cuh"
#include "cuda/cuda_check.h"

namespace xattn::cuda {
namespace {

constexpr int kWarps = 4;

template <typename T>
__device__ __forceinline__ void pack_a(uint32_t (&pa)[4], const float (&c0)[4], const float (&c1)[4]) {
  pa[0] = Mma<T>::pack(c0[0], c0[1]);
  pa[1] = Mma<T>::pack(c0[2], c0[3]);
  pa[2] = Mma<T>::pack(c1[0], c1[1]);
  pa[3] = Mma<T>::pack(c1[2], c1[3]);
}

// ---------------------------------------------------------------- dK, dV (KV-stationary)
template <typename T, int D, int NW, int BQ>
__global__ void __launch_bounds__(NW * 32, 2) bwd_dkdv_kernel(AttnGeom g, BwdArgs a) {
  constexpr int BN = 16 * NW, NT = NW * 32, DK = D / 16, DN = D / 8, QN = BQ / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* Ks = reinterpret_cast<T*>(smem_raw);
  T* Vs = Ks + BN * D;
  T* Qs = Vs + BN * D;       // [2][BQ*D]
  T* Os = Qs + 2 * BQ * D;   // dO, [2][BQ*D]
  float* lse_s = reinterpret_cast<float*>(Os + 2 * BQ * D);  // [2][BQ] (log2 units)
  float* drow_s = lse_s + 2 * BQ;                            // [2][BQ]
  int* beg_s = reinterpret_cast<int*>(drow_s + 2 * BQ);      // [2][BQ]
  int* end_s = beg_s + 2 * BQ;                               // [2][BQ]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int b = blockIdx.y / g.kv_heads, hk = blockIdx.y % g.kv_heads;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t rows = g.lq * g.group;
  const int n_qt = static_cast<int>((rows + BQ - 1) / BQ);
  const T* q = static_cast<const T*>(a.q);
  const T* dout = static_cast<const T*>(a.dout);
  const float sl2 = g.scale * kLog2e;

  auto load_q_side = [&](int buf, int qt) {
    const int64_t r0 = static_cast<int64_t>(qt) * BQ;
    load_packed_tile<T, D, BQ, NT>(Qs + buf * BQ * D, q, g, b, hk, r0, tid);
    load_packed_tile<T, D, BQ, NT>(Os + buf * BQ * D, dout, g, b, hk, r0, tid);
    for (int r = tid; r < BQ; r += NT) {
      int beg, end;
      packed_row_range(g, b, r0 + r, beg, end);
      float l2 = -INFINITY, dr = 0.f;
      if (r0 + r < rows) {
        const int64_t st = packed_row_stat(g, b, hk, r0 + r);
        l2 = a.lse[st] * kLog2e;
        dr = a.drow[st];
      }
      if (l2 == -INFINITY) beg = end = 0;  // a row that saw nothing has no gradient
      lse_s[buf * BQ + r] = l2;
      drow_s[buf * BQ + r] = dr;
      beg_s[buf * BQ + r] = beg;
      end_s[buf * BQ + r] = end;
    }
  };

  load_kv_tile<T, D, BN, NT>(Ks, static_cast<const T*>(a.k), g, b, hk, j0, tid);
  load_kv_tile<T, D, BN, NT>(Vs, static_cast<const T*>(a.v), g, b, hk, j0, tid);
  load_q_side(0, 0);
  cp_async_commit();

  float dk[DN][4], dv[DN][4];
#pragma unroll
  for (int i = 0; i < DN; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;
  const int jl_a = static_cast<int>(j0) + warp * 16 + gq, jl_b = jl_a + 8;  // this thread's two KV rows

  for (int qt = 0; qt < n_qt; ++qt) {
    const int buf = qt & 1;
    if (qt + 1 < n_qt) {
      load_q_side(buf ^ 1, qt + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* Qb = Qs + buf * BQ * D;
    const T* Ob = Os + buf * BQ * D;
    const float* lse_b = lse_s + buf * BQ;
    const float* drow_b = drow_s + buf * BQ;
    const int* beg_b = beg_s + buf * BQ;
    const int* end_b = end_s + buf * BQ;

    float st[QN][4], dpt[QN][4];
#pragma unroll
    for (int i = 0; i < QN; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[i][e] = dpt[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) {
      uint32_t ka[4], va[4];
      const int ar = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ac = kk * 16 + (lane >> 4) * 8;
      ldsm_x4(ka, smem_addr(Ks + swz<D>(ar, ac)));
      ldsm_x4(va, smem_addr(Vs + swz<D>(ar, ac)));
#pragma unroll
      for (int nn = 0; nn < BQ / 16; ++nn) {
        const int br = nn * 16 + (lane & 7) + (lane >> 4) * 8, bc = kk * 16 + ((lane >> 3) & 1) * 8;
        uint32_t bq[4], bo[4];
        ldsm_x4(bq, smem_addr(Qb + swz<D>(br, bc)));
        ldsm_x4(bo, smem_addr(Ob + swz<D>(br, bc)));
        Mma<T>::run(st[2 * nn], ka, bq[0], bq[1]);       // S^T = K Q^T
        Mma<T>::run(st[2 * nn + 1], ka, bq[2], bq[3]);
        Mma<T>::run(dpt[2 * nn], va, bo[0], bo[1]);      // dP^T = V dO^T
        Mma<T>::run(dpt[2 * nn + 1], va, bo[2], bo[3]);
      }
    }
#pragma unroll
    for (int n8 = 0; n8 < QN; ++n8) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = n8 * 8 + 2 * tq + (e & 1);
        const int jl = e < 2 ? jl_a : jl_b;
        const bool vis = jl >= beg_b[c] && jl < end_b[c];
        const float p = vis ? fast_exp2(st[n8][e] * sl2 - lse_b[c]) : 0.f;
        st[n8][e] = p;
        dpt[n8][e] = p * (dpt[n8][e] - drow_b[c]);
      }
    }
#pragma unroll
    for (int kq = 0; kq < BQ / 16; ++kq) {
      uint32_t pa[4], sa[4];
      pack_a<T>(pa, st[2 * kq], st[2 * kq + 1]);
      pack_a<T>(sa, dpt[2 * kq], dpt[2 * kq + 1]);
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        const int br = kq * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, bc = dn * 16 + (lane >> 4) * 8;
        uint32_t bo[4], bq[4];
        ldsm_x4_t(bo, smem_addr(Ob + swz<D>(br, bc)));
        ldsm_x4_t(bq, smem_addr(Qb + swz<D>(br, bc)));
        Mma<T>::run(dv[2 * dn], pa, bo[0], bo[1]);       // dV += P^T dO
        Mma<T>::run(dv[2 * dn + 1], pa, bo[2], bo[3]);
        Mma<T>::run(dk[2 * dn], sa, bq[0], bq[1]);       // dK += dS^T Q
        Mma<T>::run(dk[2 * dn + 1], sa, bq[2], bq[3]);
      }
    }
    __syncthreads();
  }

  // Each (KV row, KV head) belongs to exactly one CTA: plain read-modify-write.
  const int64_t jr[2] = {jl_a, jl_b};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (jr[h] >= g.lkv) continue;
    const int64_t off = ((b * g.lkv + jr[h]) * g.kv_heads + hk) * static_cast<int64_t>(D) + 2 * tq;
#pragma unroll
    for (int i = 0; i < DN; ++i) {
      float2* pk = reinterpret_cast<float2*>(a.dk + off + i * 8);
      float2* pv = reinterpret_cast<float2*>(a.dv + off + i * 8);
      float2 ok = *pk, ov = *pv;
      ok.x += g.scale * dk[i][2 * h];
      ok.y += g.scale * dk[i][2 * h + 1];
      ov.x += dv[i][2 * h];
      ov.y += dv[i][2 * h + 1];
      *pk = ok;
      *pv = ov;
    }
  }
}

// ---------------------------------------------------------------- dQ (Q-stationary, split over KV)
template <typename T, int D, int NW, int BN>
__global__ void __launch_bounds__(NW * 32, 2) bwd_dq_kernel(AttnGeom g, BwdArgs a, int tiles_per_split) {
  constexpr int BM = 16 * NW, NT = NW * 32, DK = D / 16, DN = D / 8, SN = BN / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);
  T* Os = Qs + BM * D;
  T* Ks = Os + BM * D;       // [2][BN*D]
  T* Vs = Ks + 2 * BN * D;   // [2][BN*D]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int b = blockIdx.y / g.kv_heads, hk = blockIdx.y % g.kv_heads, split = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int64_t rows = g.lq * g.group;
  const int lkv = static_cast<int>(g.lkv);
  const int n_tiles = (lkv + BN - 1) / BN;
  int tb = split * tiles_per_split, te = min(n_tiles, tb + tiles_per_split);

  const int64_t rr[2] = {row0 + warp * 16 + gq, row0 + warp * 16 + gq + 8};
  int beg[2], end[2];
  float l2[2], dr[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    packed_row_range(g, b, rr[h], beg[h], end[h]);
    l2[h] = -INFINITY;
    dr[h] = 0.f;
    if (rr[h] < rows) {
      const int64_t st = packed_row_stat(g, b, hk, rr[h]);
      l2[h] = a.lse[st] * kLog2e;
      dr[h] = a.drow[st];
    }
    if (l2[h] == -INFINITY) beg[h] = end[h] = 0;
  }
  int lo, hi;
  cta_visible_union<NT>(beg[0], end[0], beg[1], end[1], lo, hi);
  if (lo >= hi) {
    te = tb;
  } else {
    tb = max(tb, lo / BN);
    te = min(te, (hi + BN - 1) / BN);
  }
  const int w_beg = __reduce_max_sync(0xffffffffu, max(beg[0], beg[1]));
  const int w_end = __reduce_min_sync(0xffffffffu, min(end[0], end[1]));
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const float sl2 = g.scale * kLog2e;

  float dq[DN][4];
#pragma unroll
  for (int i = 0; i < DN; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
  uint32_t qf[DK][4], of[DK][4];

  if (tb < te) {
    load_packed_tile<T, D, BM, NT>(Qs, static_cast<const T*>(a.q), g, b, hk, row0, tid);
    load_packed_tile<T, D, BM, NT>(Os, static_cast<const T*>(a.dout), g, b, hk, row0, tid);
    load_kv_pair<T, D, BN, NT>(Ks, Vs, k, v, g, b, hk, tb, tid);
    cp_async_commit();
  }
  for (int t = tb; t < te; ++t) {
    const int buf = (t - tb) & 1;
    kv_pipeline_step<T, D, BN, NT>(Ks, Vs, k, v, g, b, hk, t, te, buf, tid);
    if (t == tb) {
#pragma unroll
      for (int kk = 0; kk < DK; ++kk) {
        const int ar = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ac = kk * 16 + (lane >> 4) * 8;
        ldsm_x4(qf[kk], smem_addr(Qs + swz<D>(ar, ac)));
        ldsm_x4(of[kk], smem_addr(Os + swz<D>(ar, ac)));
      }
    }
    const T* Kb = Ks + buf * BN * D;
    const T* Vb = Vs + buf * BN * D;
    float s[SN][4], dp[SN][4];
#pragma unroll
    for (int i = 0; i < SN; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][e] = dp[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) {
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        const int br = nn * 16 + (lane & 7) + (lane >> 4) * 8, bc = kk * 16 + ((lane >> 3) & 1) * 8;
        uint32_t bk[4], bv[4];
        ldsm_x4(bk, smem_addr(Kb + swz<D>(br, bc)));
        ldsm_x4(bv, smem_addr(Vb + swz<D>(br, bc)));
        Mma<T>::run(s[2 * nn], qf[kk], bk[0], bk[1]);     // S = Q K^T
        Mma<T>::run(s[2 * nn + 1], qf[kk], bk[2], bk[3]);
        Mma<T>::run(dp[2 * nn], of[kk], bv[0], bv[1]);    // dP = dO V^T
        Mma<T>::run(dp[2 * nn + 1], of[kk], bv[2], bv[3]);
      }
    }
    const int j0 = t * BN;
    const bool full = j0 >= w_beg && j0 + BN <= w_end;
    // dS = P (dP - D).
    with_bounds_tests(!full, [&](auto masked) {
#pragma unroll
      for (int n8 = 0; n8 < SN; ++n8) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int h = e >> 1;
          float p = fast_exp2(s[n8][e] * sl2 - l2[h]);
          if constexpr (decltype(masked)::value) {
            const int j = j0 + n8 * 8 + 2 * tq + (e & 1);
            p = j >= beg[h] && j < end[h] ? p : 0.f;
          }
          dp[n8][e] = p * (dp[n8][e] - dr[h]);
        }
      }
    });
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t sa[4];
      pack_a<T>(sa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t bk[4];
        ldsm_x4_t(bk, smem_addr(Kb + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dn * 16 + (lane >> 4) * 8)));
        Mma<T>::run(dq[2 * dn], sa, bk[0], bk[1]);       // dQ += dS K
        Mma<T>::run(dq[2 * dn + 1], sa, bk[2], bk[3]);
      }
    }
    __syncthreads();
  }

  const bool partial = a.dq_splits > 1;
  float* dst = partial ? a.dq_part + split * (g.batch * g.lq * g.heads * D) : a.dq;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (rr[h] >= rows) continue;
    float* p = dst + packed_row_offset(g, b, hk, rr[h]) + 2 * tq;
#pragma unroll
    for (int i = 0; i < DN; ++i) {
      float2 val = make_float2(g.scale * dq[i][2 * h], g.scale * dq[i][2 * h + 1]);
      float2* pp = reinterpret_cast<float2*>(p + i * 8);
      if (!partial) {
        const float2 old = *pp;
        val.x += old.x;
        val.y += old.y;
      }
      *pp = val;
    }
  }
}

template <int D>
constexpr int dkdv_bq() { return D == 128 ? 32 : 64; }
template <int D>
constexpr int dq_bn() { return D == 128 ? 32 : 64; }

template <typename T, int D>
void launch_bwd(const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  constexpr int NW = kWarps, BQ = dkdv_bq<D>(), BN = dq_bn<D>();
  {
    const size_t smem = static_cast<size_t>(2 * 16 * NW + 4 * BQ) * D * sizeof(T) + 8 * BQ * sizeof(float);
    auto kern = bwd_dkdv_kernel<T, D, NW, BQ>;
    XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    dim3 grid(static_cast<unsigned>((g.lkv + 16 * NW - 1) / (16 * NW)), static_cast<unsigned>(g.batch * g.kv_heads));
    kern<<<grid, NW * 32, smem, s>>>(g, a);
    XATTN_CUDA_LAUNCHED("attn_bwd dkdv");
  }
  {
    const size_t smem = static_cast<size_t>(2 * 16 * NW + 4 * BN) * D * sizeof(T);
    auto kern = bwd_dq_kernel<T, D, NW, BN>;
    XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const int n_tiles = tc_dq_tiles(D, g.lkv);
    const int per_split = (n_tiles + a.dq_splits - 1) / a.dq_splits;
    dim3 grid(tc_dq_row_tiles(g), static_cast<unsigned>(g.batch * g.kv_heads), a.dq_splits);
    kern<<<grid, NW * 32, smem, s>>>(g, a, per_split);
    XATTN_CUDA_LAUNCHED("attn_bwd dq");
  }
}

}  // namespace

int tc_dq_tiles(int head_dim, int64_t lkv) {
  const int bn = head_dim == 128 ? dq_bn<128>() : dq_bn<64>();
  return static_cast<int>((lkv + bn - 1) / bn);
}
int tc_dq_row_tiles(const AttnGeom& g) {
  const int bm = 16 * kWarps;
  return static_cast<int>((g.lq * g.group + bm - 1) / bm);
}

void tc_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  if (t == DType::BF16) {
    if (g.head_dim == 64) return launch_bwd<__nv_bfloat16, 64>(g, a, s);
    if (g.head_dim == 128) return launch_bwd<__nv_bfloat16, 128>(g, a, s);
  } else if (t == DType::F16) {
    if (g.head_dim == 64) return launch_bwd<__half, 64>(g, a, s);
    if (g.head_dim == 128) return launch_bwd<__half, 128>(g, a, s);
  }
  fail(ErrorCode::Internal, "tensor-core attn_bwd called for an unsupported dtype/head_dim");
}

}  // namespace xattn::cuda
