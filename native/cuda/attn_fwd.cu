// Tensor-core flash forward (mma.sync m16n8k16, sm_80+): writes float32 O (normalised) and natural-log LSE.
// CTA = 16*NW packed query rows (GQA heads of one KV head share the tile) x one KV split; warps own 16 rows;
// K/V tiles of 64 rows double-buffered with cp.async; online softmax in base 2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/error.h"
#include "cuda/attn_tile.cuh"
#include "cuda/cuda_check.h"

namespace xattn::cuda {
namespace {

constexpr int kFwdBN = 64;
constexpr int kFwdWarps = 4;

template <typename T, int D, int NW>
__global__ void __launch_bounds__(NW * 32, 2) fwd_kernel(AttnGeom g, FwdArgs a, int tiles_per_split) {
  constexpr int BM = 16 * NW, BN = kFwdBN, NT = NW * 32, DK = D / 16, DN = D / 8, SN = BN / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);
  T* Ks = Qs + BM * D;       // [2][BN*D]
  T* Vs = Ks + 2 * BN * D;   // [2][BN*D]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int b = blockIdx.y / g.kv_heads, hk = blockIdx.y % g.kv_heads, split = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int lkv = static_cast<int>(g.lkv);
  const int n_tiles = (lkv + BN - 1) / BN;
  int tb = split * tiles_per_split, te = min(n_tiles, tb + tiles_per_split);

  const int64_t ra = row0 + warp * 16 + gq, rb = ra + 8;
  int beg_a, end_a, beg_b, end_b;
  packed_row_range(g, b, ra, beg_a, end_a);
  packed_row_range(g, b, rb, beg_b, end_b);
  int lo, hi;
  cta_visible_union<NT>(beg_a, end_a, beg_b, end_b, lo, hi);
  if (lo >= hi) {
    te = tb;
  } else {
    tb = max(tb, lo / BN);
    te = min(te, (hi + BN - 1) / BN);
  }
  // Tiles fully inside every row's range of this warp need no per-element mask.
  const int w_beg = __reduce_max_sync(0xffffffffu, max(beg_a, beg_b));
  const int w_end = __reduce_min_sync(0xffffffffu, min(end_a, end_b));

  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const float sl2 = g.scale * kLog2e;

  float o[DN][4];
#pragma unroll
  for (int i = 0; i < DN; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  uint32_t qf[DK][4];

  if (tb < te) {
    load_packed_tile<T, D, BM, NT>(Qs, q, g, b, hk, row0, tid);
    load_kv_tile<T, D, BN, NT>(Ks, k, g, b, hk, static_cast<int64_t>(tb) * BN, tid);
    load_kv_tile<T, D, BN, NT>(Vs, v, g, b, hk, static_cast<int64_t>(tb) * BN, tid);
    cp_async_commit();
  }
  for (int t = tb; t < te; ++t) {
    const int buf = (t - tb) & 1;
    if (t + 1 < te) {
      load_kv_tile<T, D, BN, NT>(Ks + (buf ^ 1) * BN * D, k, g, b, hk, static_cast<int64_t>(t + 1) * BN, tid);
      load_kv_tile<T, D, BN, NT>(Vs + (buf ^ 1) * BN * D, v, g, b, hk, static_cast<int64_t>(t + 1) * BN, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (t == tb) {
#pragma unroll
      for (int kk = 0; kk < DK; ++kk)
        ldsm_x4(qf[kk], smem_addr(Qs + swz<D>(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, kk * 16 + (lane >> 4) * 8)));
    }
    const T* Kb = Ks + buf * BN * D;
    const T* Vb = Vs + buf * BN * D;

    float s[SN][4];
#pragma unroll
    for (int i = 0; i < SN; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) {
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t bk[4];
        ldsm_x4(bk, smem_addr(Kb + swz<D>(nn * 16 + (lane & 7) + (lane >> 4) * 8, kk * 16 + ((lane >> 3) & 1) * 8)));
        Mma<T>::run(s[2 * nn], qf[kk], bk[0], bk[1]);
        Mma<T>::run(s[2 * nn + 1], qf[kk], bk[2], bk[3]);
      }
    }

    const int j0 = t * BN;
    const bool full = j0 >= w_beg && j0 + BN <= w_end;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int n8 = 0; n8 < SN; ++n8) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n8][e] * sl2;
        if (!full) {
          const int j = j0 + n8 * 8 + 2 * tq + (e & 1);
          const bool vis = e < 2 ? (j >= beg_a && j < end_a) : (j >= beg_b && j < end_b);
          x = vis ? x : -INFINITY;
        }
        s[n8][e] = x;
      }
      mx_a = fmaxf(mx_a, fmaxf(s[n8][0], s[n8][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[n8][2], s[n8][3]));
    }
    mx_a = quad_max(mx_a);
    mx_b = quad_max(mx_b);
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    const float mu_a = mn_a == -INFINITY ? 0.f : mn_a, mu_b = mn_b == -INFINITY ? 0.f : mn_b;
    const float al_a = fast_exp2(m_a - mu_a), al_b = fast_exp2(m_b - mu_b);
    m_a = mn_a;
    m_b = mn_b;
    float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
    for (int n8 = 0; n8 < SN; ++n8) {
      s[n8][0] = fast_exp2(s[n8][0] - mu_a);
      s[n8][1] = fast_exp2(s[n8][1] - mu_a);
      s[n8][2] = fast_exp2(s[n8][2] - mu_b);
      s[n8][3] = fast_exp2(s[n8][3] - mu_b);
      sum_a += s[n8][0] + s[n8][1];
      sum_b += s[n8][2] + s[n8][3];
    }
    l_a = l_a * al_a + sum_a;
    l_b = l_b * al_b + sum_b;
#pragma unroll
    for (int i = 0; i < DN; ++i) {
      o[i][0] *= al_a; o[i][1] *= al_a;
      o[i][2] *= al_b; o[i][3] *= al_b;
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t bv[4];
        ldsm_x4_t(bv, smem_addr(Vb + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dn * 16 + (lane >> 4) * 8)));
        Mma<T>::run(o[2 * dn], pa, bv[0], bv[1]);
        Mma<T>::run(o[2 * dn + 1], pa, bv[2], bv[3]);
      }
    }
    __syncthreads();
  }

  l_a = quad_sum(l_a);
  l_b = quad_sum(l_b);
  const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
  float* od = a.splits > 1 ? a.o_part + split * (g.batch * g.lq * g.heads * D) : a.o;
  float* ld = a.splits > 1 ? a.lse_part + split * (g.batch * g.heads * g.lq) : a.lse;
  const int64_t rows = g.lq * g.group;
  if (ra < rows) {
    float* p = od + packed_row_offset(g, b, hk, ra) + 2 * tq;
#pragma unroll
    for (int i = 0; i < DN; ++i)
      *reinterpret_cast<float2*>(p + i * 8) = make_float2(o[i][0] * inv_a, o[i][1] * inv_a);
    if (tq == 0) ld[packed_row_stat(g, b, hk, ra)] = l_a > 0.f ? (m_a + __log2f(l_a)) * kLn2 : -INFINITY;
  }
  if (rb < rows) {
    float* p = od + packed_row_offset(g, b, hk, rb) + 2 * tq;
#pragma unroll
    for (int i = 0; i < DN; ++i)
      *reinterpret_cast<float2*>(p + i * 8) = make_float2(o[i][2] * inv_b, o[i][3] * inv_b);
    if (tq == 0) ld[packed_row_stat(g, b, hk, rb)] = l_b > 0.f ? (m_b + __log2f(l_b)) * kLn2 : -INFINITY;
  }
}

template <typename T, int D>
void launch_fwd(const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  constexpr int NW = kFwdWarps, BM = 16 * NW;
  const size_t smem = static_cast<size_t>(BM + 4 * kFwdBN) * D * sizeof(T);
  auto kern = fwd_kernel<T, D, NW>;
  // Cheap host call; done every launch so it holds on whichever device is current.
  XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int n_tiles = tc_fwd_tiles(g.lkv);
  const int per_split = (n_tiles + a.splits - 1) / a.splits;
  dim3 grid(tc_fwd_row_tiles(g), static_cast<unsigned>(g.batch * g.kv_heads), a.splits);
  kern<<<grid, NW * 32, smem, s>>>(g, a, per_split);
  XATTN_CUDA_LAUNCHED("attn_fwd");
}

}  // namespace

bool tc_supported(DType t, int head_dim) { return t != DType::F32 && (head_dim == 64 || head_dim == 128); }
int tc_fwd_tiles(int64_t lkv) { return static_cast<int>((lkv + kFwdBN - 1) / kFwdBN); }
int tc_fwd_row_tiles(const AttnGeom& g) {
  const int bm = 16 * kFwdWarps;
  return static_cast<int>((g.lq * g.group + bm - 1) / bm);
}

void tc_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  if (t == DType::BF16) {
    if (g.head_dim == 64) return launch_fwd<__nv_bfloat16, 64>(g, a, s);
    if (g.head_dim == 128) return launch_fwd<__nv_bfloat16, 128>(g, a, s);
  } else if (t == DType::F16) {
    if (g.head_dim == 64) return launch_fwd<__half, 64>(g, a, s);
    if (g.head_dim == 128) return launch_fwd<__half, 128>(g, a, s);
  }
  fail(ErrorCode::Internal, "tensor-core attn_fwd called for an unsupported dtype/head_dim");
}

}  // namespace xattn::cuda
