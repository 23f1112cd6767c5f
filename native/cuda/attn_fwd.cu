// Tensor-core flash forward (mma.sync m16n8k16, sm_80+): writes float32 O (normalised) and natural-log LSE.
// CTA = 16*NW*MT packed query rows (the GQA heads of one KV head share the tile) x one KV split; each warp
// owns MT 16-row m-tiles, so every K/V fragment read from shared memory feeds MT mma's (MT = 2 halves the
// shared-memory traffic per flop). K/V tiles of 64 (or 32) rows double-buffered with cp.async; base-2 online softmax.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/error.h"
#include "cuda/attn_tile.cuh"
#include "cuda/cuda_check.h"

namespace xattn::cuda {
namespace {

constexpr int kFwdWarps = 4;
// KV tile rows: 32 when d128 runs two m-tiles per warp, else the accumulators spill.
__host__ __device__ constexpr int fwd_bn(int D, int MT) { return D == 128 && MT == 2 ? 32 : 64; }

template <typename T, int D, int NW, int MT>
__global__ void __launch_bounds__(NW * 32, 2) fwd_kernel(AttnGeom g, FwdArgs a, int tiles_per_split) {
  constexpr int BM = 16 * NW * MT, BN = fwd_bn(D, MT), NT = NW * 32, DK = D / 16, DN = D / 8, SN = BN / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);
  T* Ks = Qs + BM * D;       // [2][BN*D]
  T* Vs = Ks + 2 * BN * D;   // [2][BN*D]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int b = blockIdx.y / g.kv_heads, hk = blockIdx.y % g.kv_heads, split = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int wrow = warp * 16 * MT;  // first tile row of this warp
  const int lkv = static_cast<int>(g.lkv);
  const int n_tiles = (lkv + BN - 1) / BN;
  int tb = split * tiles_per_split, te = min(n_tiles, tb + tiles_per_split);

  // Visible range of each tile row, kept in shared memory (registers are the scarce resource here).
  __shared__ int row_beg[BM], row_end[BM];
  int my_lo = INT_MAX, my_hi = 0, my_beg = 0, my_end = INT_MAX;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // this thread's rows: m-tile mt, half h (row gq or gq + 8)
      const int rr = wrow + mt * 16 + h * 8 + gq;
      int rb, re;
      packed_row_range(g, b, row0 + rr, rb, re);
      row_beg[rr] = rb;
      row_end[rr] = re;
      if (rb < re) {
        my_lo = min(my_lo, rb);
        my_hi = max(my_hi, re);
      }
      my_beg = max(my_beg, rb);
      my_end = min(my_end, re);
    }
  int lo, hi;
  cta_visible_union<NT>(my_lo, my_hi, 0, 0, lo, hi);
  if (lo >= hi) {
    te = tb;
  } else {
    tb = max(tb, lo / BN);
    te = min(te, (hi + BN - 1) / BN);
  }
  // Tiles fully inside every row's range of this warp need no per-element mask.
  const int w_beg = __reduce_max_sync(0xffffffffu, my_beg);
  const int w_end = __reduce_min_sync(0xffffffffu, my_end);

  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const float sl2 = g.scale * kLog2e;

  float o[MT][DN][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < DN; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
  }
  // One m-tile keeps Q in registers; more read Q fragments from shared memory per k-step (registers).
  uint32_t qf[MT == 1 ? DK : 1][4];
  auto q_addr = [&](int mt, int kk) {
    return smem_addr(Qs + swz<D>(wrow + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, kk * 16 + (lane >> 4) * 8));
  };

  if (tb < te) {
    load_packed_tile<T, D, BM, NT>(Qs, q, g, b, hk, row0, tid);
    load_kv_pair<T, D, BN, NT>(Ks, Vs, k, v, g, b, hk, tb, tid);
    cp_async_commit();
  }
  for (int t = tb; t < te; ++t) {
    const int buf = (t - tb) & 1;
    kv_pipeline_step<T, D, BN, NT>(Ks, Vs, k, v, g, b, hk, t, te, buf, tid);
    if constexpr (MT == 1) {
      if (t == tb) {
#pragma unroll
        for (int kk = 0; kk < DK; ++kk) ldsm_x4(qf[kk], q_addr(0, kk));
      }
    }
    const T* Kb = Ks + buf * BN * D;
    const T* Vb = Vs + buf * BN * D;

    float s[MT][SN][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < SN; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK; ++kk) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (MT == 1) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[mt][e] = qf[kk][e];
        } else {
          ldsm_x4(qa[mt], q_addr(mt, kk));
        }
      }
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t bk[4];
        ldsm_x4(bk, smem_addr(Kb + swz<D>(nn * 16 + (lane & 7) + (lane >> 4) * 8, kk * 16 + ((lane >> 3) & 1) * 8)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          Mma<T>::run(s[mt][2 * nn], qa[mt], bk[0], bk[1]);
          Mma<T>::run(s[mt][2 * nn + 1], qa[mt], bk[2], bk[3]);
        }
      }
    }

    const int j0 = t * BN;
    const bool full = j0 >= w_beg && j0 + BN <= w_end;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float mx[2] = {-INFINITY, -INFINITY};
      // Scaled S and its row maxima.
      with_bounds_tests(!full, [&](auto masked) {
#pragma unroll
        for (int n8 = 0; n8 < SN; ++n8) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[mt][n8][e] * sl2;
            if constexpr (decltype(masked)::value) {
              const int j = j0 + n8 * 8 + 2 * tq + (e & 1), rr = wrow + mt * 16 + (e >> 1) * 8 + gq;
              x = (j >= row_beg[rr] && j < row_end[rr]) ? x : -INFINITY;
            }
            s[mt][n8][e] = x;
            mx[e >> 1] = fmaxf(mx[e >> 1], x);
          }
        }
      });
      float al[2], mu[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float mn = fmaxf(m[mt][h], quad_max(mx[h]));
        mu[h] = mn == -INFINITY ? 0.f : mn;
        al[h] = fast_exp2(m[mt][h] - mu[h]);
        m[mt][h] = mn;
      }
      float sum[2] = {0.f, 0.f};
#pragma unroll
      for (int n8 = 0; n8 < SN; ++n8)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[mt][n8][e] = fast_exp2(s[mt][n8][e] - mu[e >> 1]);
          sum[e >> 1] += s[mt][n8][e];
        }
#pragma unroll
      for (int h = 0; h < 2; ++h) l[mt][h] = l[mt][h] * al[h] + sum[h];
#pragma unroll
      for (int i = 0; i < DN; ++i) {
        o[mt][i][0] *= al[0]; o[mt][i][1] *= al[0];
        o[mt][i][2] *= al[1]; o[mt][i][3] *= al[1];
      }
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pa[mt][0] = Mma<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = Mma<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = Mma<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = Mma<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t bv[4];
        ldsm_x4_t(bv, smem_addr(Vb + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dn * 16 + (lane >> 4) * 8)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          Mma<T>::run(o[mt][2 * dn], pa[mt], bv[0], bv[1]);
          Mma<T>::run(o[mt][2 * dn + 1], pa[mt], bv[2], bv[3]);
        }
      }
    }
    __syncthreads();
  }

  float* od = a.splits > 1 ? a.o_part + split * (g.batch * g.lq * g.heads * D) : a.o;
  float* ld = a.splits > 1 ? a.lse_part + split * (g.batch * g.heads * g.lq) : a.lse;
  const int64_t rows = g.lq * g.group;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float lt = quad_sum(l[mt][h]);
      const int64_t r = row0 + wrow + mt * 16 + h * 8 + gq;
      if (r >= rows) continue;
      const float inv = lt > 0.f ? 1.f / lt : 0.f;
      float* p = od + packed_row_offset(g, b, hk, r) + 2 * tq;
#pragma unroll
      for (int i = 0; i < DN; ++i)
        *reinterpret_cast<float2*>(p + i * 8) = make_float2(o[mt][i][2 * h] * inv, o[mt][i][2 * h + 1] * inv);
      if (tq == 0) ld[packed_row_stat(g, b, hk, r)] = lt > 0.f ? (m[mt][h] + __log2f(lt)) * kLn2 : -INFINITY;
    }
}

template <typename T, int D, int MT>
void launch_fwd(const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  constexpr int NW = kFwdWarps, BM = 16 * NW * MT;
  const size_t smem = static_cast<size_t>(BM + 4 * fwd_bn(D, MT)) * D * sizeof(T);
  auto kern = fwd_kernel<T, D, NW, MT>;
  // Cheap host call; done every launch so it holds on whichever device is current.
  XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int n_tiles = tc_fwd_tiles(g.lkv, D, MT);
  const int per_split = (n_tiles + a.splits - 1) / a.splits;
  dim3 grid(tc_fwd_row_tiles(g, MT), static_cast<unsigned>(g.batch * g.kv_heads), a.splits);
  kern<<<grid, NW * 32, smem, s>>>(g, a, per_split);
  XATTN_CUDA_LAUNCHED("attn_fwd");
}

template <typename T>
void launch_fwd_dim(const AttnGeom& g, const FwdArgs& a, int mt, cudaStream_t s) {
  if (g.head_dim == 64) return mt == 1 ? launch_fwd<T, 64, 1>(g, a, s) : launch_fwd<T, 64, 2>(g, a, s);
  return mt == 1 ? launch_fwd<T, 128, 1>(g, a, s) : launch_fwd<T, 128, 2>(g, a, s);
}

}  // namespace

bool tc_supported(DType t, int head_dim) { return t != DType::F32 && (head_dim == 64 || head_dim == 128); }
int tc_fwd_tiles(int64_t lkv, int head_dim, int mtiles) {
  const int bn = fwd_bn(head_dim, mtiles);
  return static_cast<int>((lkv + bn - 1) / bn);
}
int tc_fwd_row_tiles(const AttnGeom& g, int mtiles) {
  const int bm = 16 * kFwdWarps * mtiles;
  return static_cast<int>((g.lq * g.group + bm - 1) / bm);
}

void tc_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, int mtiles, cudaStream_t s) {
  require(tc_supported(t, g.head_dim) && (mtiles == 1 || mtiles == 2), ErrorCode::Internal,
          "tensor-core attn_fwd called for an unsupported dtype/head_dim/m-tiles");
  if (t == DType::BF16) return launch_fwd_dim<__nv_bfloat16>(g, a, mtiles, s);
  return launch_fwd_dim<__half>(g, a, mtiles, s);
}

}  // namespace xattn::cuda
