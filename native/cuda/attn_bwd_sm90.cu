// Hopper backward (sm_90a), one kernel and five GEMMs per tile pair: a CTA owns 128 KV rows of one KV head
// (K, V loaded once by TMA; 64 rows per consumer warpgroup) and walks every packed query tile (Q, dO and
// the rows' LSE/D/mask ranges streamed by a producer warp, two stages):
//   S^T = K Q^T, dP^T = V dO^T            (wgmma, smem x smem)
//   P^T = exp(S^T - LSE), dS^T = P^T (dP^T - D)   (registers; dS^T also to smem)
//   dV += P^T dO, dK += dS^T Q            (wgmma, P^T / dS^T from registers)
//   dQ_tile = dS K                        (wgmma, dS from smem; each warpgroup one half) -> smem -> TMA add
// d64 runs a persistent grid instead: one CTA per SM walks K/V tiles, loading the next tile's K/V while it
// finishes the last (K into a second buffer, V once the last dP^T has read it: the consumers no longer
// wait for K/V between tiles; H100, 1024x64K with dK/dV written: 1.67 -> 1.54 ms). dK/dV rows belong to
// one CTA (plain read-modify-write). dQ tiles go through shared memory and a TMA reduction (fp32 adds in
// L2, off the warps' path: red.global atomics from the registers took a third of the kernel's time). CTAs
// start at different query tiles so concurrent CTAs rarely add to the same rows.
#include <atomic>
#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "cuda/attn_bwd_sm90_parts.cuh"
#include "cuda/attn_tile.cuh"
#include "cuda/cuda_check.h"
#include "cuda/sm90_sync.cuh"
#include "cuda/sm90_tma.h"
#include "cuda/sm90_wgmma.cuh"

namespace xattn::cuda {
namespace {

using sm90_bwd::BwdCfg;
using sm90_bwd::kScaleInP;
using sm90_bwd::RowStats;

template <typename T, int D>
__global__ void __launch_bounds__(384, 1)
    bwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_do,
                    const __grid_constant__ CUtensorMap tm_k, const __grid_constant__ CUtensorMap tm_v,
                    const __grid_constant__ CUtensorMap tm_dq, AttnGeom g, BwdArgs a, int lag,
                    float lse2_shift) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = BwdCfg<D>;
  constexpr int BN = C::BN, BQ = C::BQ;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sm = align1024(smem_raw);
  RowStats<BQ>* stats = reinterpret_cast<RowStats<BQ>*>(sm + C::kStatsOff);
  uint64_t* bars = reinterpret_cast<uint64_t*>(sm + C::kBarOff);
  uint64_t *k_full = bars, *v_full = bars + 2, *full = bars + 3, *empty = full + C::kStages;  // K: per buffer
  uint64_t *ds_full = empty + C::kStages, *ds_empty = ds_full + 2;  // dS^T buffers: written / read by all
  uint64_t *k_empty = ds_empty + 2, *v_empty = k_empty + 2;  // persistent: K (per buffer) / V read for the last time

  const int tid = threadIdx.x, lane = tid & 31;
  const int nh = g.kv_head_count > 0 ? g.kv_head_count : g.kv_heads;  // launched_kv_heads(), on the device
  const int b0 = blockIdx.y / nh, hk0 = g.kv_head_begin + blockIdx.y % nh, x0 = blockIdx.x;  // one tile a CTA
  const int64_t rows = g.lq * g.group;
  const int nq = static_cast<int>((rows + BQ - 1) / BQ);
  // A CTA's K/V tiles: x-th BN rows of kv head hk of batch b. Persistent CTAs take tiles blockIdx.x,
  // blockIdx.x + gridDim.x, ...; query tiles are then numbered across them (tile k's query tile it is
  // k * nq + it), so pipeline stages and dS^T buffers run on from one K/V tile to the next.
  const int nx = static_cast<int>((g.lkv + BN - 1) / BN), tiles = nx * static_cast<int>(g.batch) * nh;
  const auto for_each_tile = [&](auto&& body) {
    if constexpr (C::kPersistent) {
      int k = 0;
      for (int t = blockIdx.x; t < tiles; t += gridDim.x, ++k) {
        const int y = t / nx;
        body(t % nx, y / nh, g.kv_head_begin + y % nh, k);
      }
    } else {
      body(x0, b0, hk0, 0);
    }
  };
  if (tid == 0) {
    for (int i = 0; i < 2; ++i) mbar_init(k_full + i, 1);
    mbar_init(v_full, 1);
    for (int s = 0; s < C::kStages; ++s) {
      mbar_init(full + s, 32);  // every producer lane (stats), lane 0 also the TMA bytes
      mbar_init(empty + s, 8);  // one arrival per consumer warp
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init(ds_full + s, 256);  // every consumer thread, after its dS^T stores
      mbar_init(ds_empty + s, 8);   // one arrival per consumer warp, after its dQ product
    }
    // one arrival per consumer warp, after a K/V tile's last dQ product (K) or its last dP^T (V)
    if constexpr (C::kPersistent) {
      for (int i = 0; i < 2; ++i) mbar_init(k_empty + i, 8);
      mbar_init(v_empty, 8);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (tid < 128) {  // producer warpgroup; warp 0 works
    regs_dealloc<C::kProducerRegs>();
    if (tid >= 32) return;
    const sm90_bwd::Producer<D> producer{sm, stats, k_full, v_full, full, empty, k_empty, v_empty, &tm_q, &tm_do,
                                         &tm_k, &tm_v, g, a, lse2_shift, nq, rows, lane};
    for_each_tile([&](const int x, const int b, const int hk, const int k) { producer.tile(x, b, hk, k); });
    return;
  }
  regs_alloc<C::kConsumerRegs>();

  // Warp-uniform by construction; read from lane 0 so the compiler knows, and keeps the wgmma descriptors
  // that depend on it in uniform registers.
  const int wg = __shfl_sync(0xffffffffu, tid / 128 - 1, 0), warp = (tid / 32) & 3, gq = lane >> 2, tq = lane & 3;
  const int kr = wg * 64 + warp * 16 + gq;  // this thread's KV rows in the tile: kr and kr + 8
  const float sl2 = g.scale * kLog2e;
  // What the products still need multiplied by (see kScaleInP); 1 where the compiler can drop the multiply.
  const float dq_scale = kScaleInP<T> ? 1.f : g.scale, dk_scale = kScaleInP<T> ? 1.f : g.scale;
  const float dv_scale = kScaleInP<T> ? 1.f / g.scale : 1.f;
  const uint32_t base = smem_addr(sm);
  const uint32_t v_base = base + C::kKVBytes, q_base = base + C::kQOff, o_base = base + C::kOOff;
  const uint32_t ds_base = base + C::kDSOff;
  // This lane's row address for the dS^T stores (see there): row wg*64 + warp*16 + 8(j & 1) + r, and the
  // swizzle's part that does not depend on the column block.
  const int st_j = lane >> 3, st_r = lane & 7;
  const uint32_t ds_lane = ds_base + (wg * 64 + warp * 16 + 8 * (st_j & 1) + st_r) * 128 + (((st_j >> 1) ^ st_r) << 4);
  // dQ halves: d128 splits the head dim (64 columns each), d64 the 128 query rows (64 each).
  const int dq_row0 = BQ == 128 ? wg * 64 : 0, dq_col0 = D == 128 ? wg * 64 : 0;
  const uint64_t v_desc = sw128_desc(v_base + wg * 64 * 128, 0);

  for_each_tile([&](const int x, const int b, const int hk, const int k) {
    // Descriptors of the tiles every query tile reads: this warpgroup's K and V rows (K-major, for S^T and
    // dP^T) and K as the dQ product's MN-major B operand; the loops step along K with desc_plus.
    const int kb = sm90_bwd::k_buffer<C>(k);
    const uint32_t k_base = base + sm90_bwd::k_offset<C>(kb);
    const uint64_t k_desc = sw128_desc(k_base + wg * 64 * 128, 0);
    const uint64_t kdq_desc = sw128_desc(k_base + (dq_col0 / 64) * BN * 128, BN * 128);
    const int j0 = x * BN;
    const int jl[2] = {j0 + kr, j0 + kr + 8};
    const int jw = j0 + wg * 64;  // first KV row of this warpgroup
    float dk[D / 2], dv[D / 2];  // the only accumulators that live across query tiles
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

    // Tile it: S^T, dP^T, P^T, dS^T (to smem buffer it % 2), dV and dK. The dQ product of tile jt = it - lag
    // needs both warpgroups' halves of dS^T; with lag 1 it reads the previous tile's buffer, so the two
    // warpgroups need not reach the same point together and one's element-wise work overlaps the other's
    // GEMMs. Buffers are handed over with mbarriers (ds_full: all stores done; ds_empty: both dQ products read).
    mbar_wait(k_full + kb, (k >> 1) & 1);
    if constexpr (C::kPersistent) mbar_wait(v_full, k & 1);
    for (int it = 0; it < nq + lag; ++it) {
      const int gi = k * nq + it;  // this query tile's number in the CTA's stream
      if (it < nq) {
        const int s = gi % C::kStages;
        mbar_wait(full + s, (gi / C::kStages) & 1);
        const RowStats<BQ>& st = stats[s];
        const uint32_t qs = q_base + s * C::kQBytes, os = o_base + s * C::kQBytes;
        float sv[BQ / 2], dp[BQ / 2];
        uint32_t pa[BQ / 16][4], da[BQ / 16][4];

        const uint64_t q_desc = sw128_desc(qs, 0), o_desc = sw128_desc(os, 0);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {  // S^T = K Q^T
          const uint32_t ka = (kk >> 2) * BN * 128 + (kk & 3) * 32, qa = (kk >> 2) * BQ * 128 + (kk & 3) * 32;
          Wgmma<T, BQ>::template ss<0, 0>(sv, desc_plus(k_desc, ka), desc_plus(q_desc, qa), kk > 0);
        }
        wgmma_commit();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {  // dP^T = V dO^T
          const uint32_t ka = (kk >> 2) * BN * 128 + (kk & 3) * 32, qa = (kk >> 2) * BQ * 128 + (kk & 3) * 32;
          Wgmma<T, BQ>::template ss<0, 0>(dp, desc_plus(v_desc, ka), desc_plus(o_desc, qa), kk > 0);
        }
        wgmma_commit();

        int lo = 0, hi = 0;
        float2 early_l2[C::kStatsEarly ? BQ / 8 : 1];
        if constexpr (C::kStatsEarly) {
          lo = st.lo, hi = st.hi;
#pragma unroll
          for (int i = 0; i < BQ / 8; ++i) early_l2[i] = *reinterpret_cast<const float2*>(&st.lse2[8 * i + 2 * tq]);
        }
        wgmma_wait<1>();
        reg_fence(sv);
        if constexpr (!C::kStatsEarly) lo = st.lo, hi = st.hi;
        // P^T = exp2(S^T scaled - LSE), zero outside each row's visible range.
        with_bounds_tests(jw < lo || jw + 64 > hi, [&](auto masked) {
#pragma unroll
          for (int i = 0; i < BQ / 8; ++i) {
            const int c = 8 * i + 2 * tq;
            float2 l2;
            if constexpr (C::kStatsEarly) l2 = early_l2[i];
            else l2 = *reinterpret_cast<const float2*>(&st.lse2[c]);
            int2 bg{}, en{};
            if constexpr (decltype(masked)::value)
              bg = *reinterpret_cast<const int2*>(&st.beg[c]), en = *reinterpret_cast<const int2*>(&st.end[c]);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const bool odd = e & 1;
              const float pe = fast_exp2(fmaf(sv[4 * i + e], sl2, -(odd ? l2.y : l2.x)));
              if constexpr (decltype(masked)::value) {
                const int j = jl[e >> 1];
                sv[4 * i + e] = j >= (odd ? bg.y : bg.x) && j < (odd ? en.y : en.x) ? pe : 0.f;
              } else {
                sv[4 * i + e] = pe;
              }
            }
          }
        });
        wgmma_wait<0>();
        reg_fence(dp);
        if constexpr (C::kPersistent)
          if (it == nq - 1 && lane == 0) mbar_arrive(v_empty);  // the tile's last dP^T has read V
#pragma unroll
        for (int i = 0; i < BQ / 8; ++i) {
          const float2 dr = *reinterpret_cast<const float2*>(&st.drow[8 * i + 2 * tq]);
#pragma unroll
          for (int e = 0; e < 4; ++e) dp[4 * i + e] = sv[4 * i + e] * (dp[4 * i + e] - ((e & 1) ? dr.y : dr.x));
        }
#pragma unroll
        for (int kk = 0; kk < BQ / 16; ++kk)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            pa[kk][e] = Mma<T>::pack(sv[8 * kk + 2 * e], sv[8 * kk + 2 * e + 1]);
            da[kk][e] = Mma<T>::pack(dp[8 * kk + 2 * e], dp[8 * kk + 2 * e + 1]);
          }
        reg_fence(dv);
        reg_fence(dk);
        reg_fence(pa);
        reg_fence(da);
        const uint64_t o_mn_desc = sw128_desc(os, BQ * 128), q_mn_desc = sw128_desc(qs, BQ * 128);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BQ / 16; ++kk)  // dV += P^T dO (dO MN-major)
          Wgmma<T, D>::template rs<1>(dv, pa[kk], desc_plus(o_mn_desc, kk * 2048), 1);
#pragma unroll
        for (int kk = 0; kk < BQ / 16; ++kk)  // dK += dS^T Q
          Wgmma<T, D>::template rs<1>(dk, da[kk], desc_plus(q_mn_desc, kk * 2048), 1);
        wgmma_commit();
        // dS^T to smem while dV/dK run (both only read its registers), MN-major for the dQ product: row = KV
        // row, 64 query columns per 128-byte row. The buffer was last read by the dQ products of tile it - 2.
        mbar_wait(ds_empty + (gi & 1), ((gi >> 1) & 1) ^ 1);
        // da[m] holds four 8x8 blocks: query columns 16m + 8(j >> 1), K/V rows 8(j & 1) on from the warp's
        // 16; one stmatrix stores them, lane 8j + r giving block j's row r (16-byte chunks swizzled by row).
        const uint32_t dsb = ds_lane + (gi & 1) * C::kDSBytes;
#pragma unroll
        for (int m = 0; m < BQ / 16; ++m) stmatrix_x4((dsb ^ (((2 * m) & 7) << 4)) + (m >> 2) * BN * 128, da[m]);
        fence_proxy_async();
        mbar_arrive(ds_full + (gi & 1));
        // Done with P^T/dS^T registers before the dQ accumulators go live (register budget); the other
        // warpgroup keeps the tensor cores busy meanwhile.
        wgmma_wait<0>();
        reg_fence(dv);
        reg_fence(dk);
        reg_fence(pa);
        reg_fence(da);
        if (lane == 0) mbar_arrive(empty + s);  // dV/dK of tile it are done with Q, dO, stats
      }

      const int jt = it - lag, gj = gi - lag;  // tile whose dQ product runs now
      if (jt < 0) continue;
      float dq[32];
      {
        mbar_wait(ds_full + (gj & 1), (gj >> 1) & 1);
        const uint64_t ds_desc = sw128_desc(ds_base + (gj & 1) * C::kDSBytes + (dq_row0 / 64) * BN * 128, BN * 128);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk)  // dQ_tile = dS K: A = dS (MN-major), B = K (MN-major)
          Wgmma<T, 64>::template ss<1, 1>(dq, desc_plus(ds_desc, kk * 2048), desc_plus(kdq_desc, kk * 2048), kk > 0);
        wgmma_commit();
      }
      wgmma_wait<0>();
      reg_fence(dq);
      if (lane == 0) mbar_arrive(ds_empty + (gj & 1));

      // dQ_tile, scaled, to shared memory (box = 32-column half; rows r and r + 8; 128-byte swizzle), then one
      // thread hands both boxes to TMA reductions. The buffers are rewritten once that thread's reductions of
      // the previous tile have read them.
      const int qt = (jt + x) % nq, r = warp * 16 + gq;
      const bool issuer = (tid & 127) == 0;
      unsigned char* dqb = sm + C::kDqOff + wg * 2 * C::kDqBox;
      if (issuer) bulk_wait_read();
      named_barrier(1 + wg, 128);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        unsigned char* box = dqb + (i >> 2) * C::kDqBox;
        const int chunk = 2 * (i & 3) + (tq >> 1);
#pragma unroll
        for (int h = 0; h < 2; ++h)
          *reinterpret_cast<float2*>(box + (r + 8 * h) * 128 + ((chunk ^ gq) << 4) + (tq & 1) * 8) =
              make_float2(dq_scale * dq[4 * i + 2 * h], dq_scale * dq[4 * i + 2 * h + 1]);
      }
      fence_proxy_async();
      named_barrier(1 + wg, 128);
      if (issuer) {
        const int i0 = qt * (BQ / g.group) + dq_row0 / g.group;
        tma_reduce_add_5d(&tm_dq, dqb, dq_col0, 0, hk, i0, b);
        tma_reduce_add_5d(&tm_dq, dqb + C::kDqBox, dq_col0 + 32, 0, hk, i0, b);
        bulk_commit();
      }
    }
    if constexpr (C::kPersistent) {
      if (lane == 0) mbar_arrive(k_empty + kb);  // the last dQ product has read K
    } else if ((tid & 127) == 0) {
      bulk_wait_all();  // the staging buffers stay valid until the reductions are done
    }

    sm90_bwd::store_dkdv<D>(g, a, b, hk, jl, tq, dk, dv, dk_scale, dv_scale);
  });
  if (C::kPersistent && (tid & 127) == 0) bulk_wait_all();
#endif
}

std::atomic<int> g_lag{-1};

template <typename T, int D>
void launch(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  using C = BwdCfg<D>;
  const CUtensorMap tq = packed_rows_map(a.q, t, g, C::BQ), tdo = packed_rows_map(a.dout, t, g, C::BQ);
  const CUtensorMap tk = kv_rows_map(a.k, t, g, C::BN), tv = kv_rows_map(a.v, t, g, C::BN);
  const CUtensorMap tdq = packed_rows_map_f32(a.dq, g, 64);
  auto kern = bwd_sm90_kernel<T, D>;
  XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem));
  const int64_t nx = (g.lkv + C::BN - 1) / C::BN, ny = g.batch * g.launched_kv_heads();
  const int64_t ctas = a.ctas > 0 ? std::min<int64_t>(a.ctas, nx * ny) : nx * ny;
  const dim3 grid =
      C::kPersistent ? dim3(static_cast<unsigned>(ctas)) : dim3(static_cast<unsigned>(nx), static_cast<unsigned>(ny));
  const int lag = g_lag.load(std::memory_order_relaxed);
  // Lag 1 is the default at both head dims (d64 ran lag 0 until its dS^T stores moved behind the dV/dK
  // GEMMs; H200: 1.82 -> 1.76 ms at 1024x64K). sm90_set_bwd_lag picks one for checks and benchmarks.
  const float lse2_shift = kScaleInP<T> ? static_cast<float>(std::log2(static_cast<double>(g.scale))) : 0.f;
  kern<<<grid, C::kThreads, C::kSmem, s>>>(tq, tdo, tk, tv, tdq, g, a, lag >= 0 ? lag : 1, lse2_shift);
  XATTN_CUDA_LAUNCHED("attn_bwd (sm90)");
}

}  // namespace

void sm90_set_bwd_lag(int lag) { g_lag.store(lag < 0 ? -1 : lag > 0 ? 1 : 0, std::memory_order_relaxed); }

void sm90_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s) {
  require(sm90_supported(t, g), ErrorCode::Internal, "sm90 attn_bwd called for an unsupported shape");
  require(g.kv_head_begin >= 0 && g.kv_head_count >= 0 && g.kv_head_begin + g.launched_kv_heads() <= g.kv_heads,
          ErrorCode::Internal, "sm90 attn_bwd: KV head range outside the tensors' heads");
  if (t == DType::BF16) return g.head_dim == 64 ? launch<__nv_bfloat16, 64>(t, g, a, s) : launch<__nv_bfloat16, 128>(t, g, a, s);
  return g.head_dim == 64 ? launch<__half, 64>(t, g, a, s) : launch<__half, 128>(t, g, a, s);
}

}  // namespace xattn::cuda
