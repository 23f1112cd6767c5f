// Pieces of the Hopper backward kernel (attn_bwd_sm90.cu): its configuration and shared-memory layout, the
// producer warp's loads for one K/V tile, and the consumers' dK/dV write-out. Force-inlined into the kernel:
// the SASS is the one kernel's, as before the split.
#pragma once
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/attn_tile.cuh"
#include "cuda/kernels.h"
#include "cuda/sm90_sync.cuh"
#include "cuda/sm90_tma.h"

namespace xattn::cuda::sm90_bwd {

template <int BQ>
struct RowStats {  // per query tile, written by the producer warp
  float lse2[BQ];  // LSE in log2 units (-inf: row has no gradient)
  float drow[BQ];
  int beg[BQ], end[BQ];  // visible KV range (block-local); empty for dead rows
  int lo, hi;            // every row of the tile sees [lo, hi)
};

// bf16 takes the softmax scale into P^T through the LSE (P^T' = scale P^T, so dS^T' = scale dS^T): dQ and dK
// come out scaled and dV is divided once at the end, which saves the dQ staging's 32 multiplies a tile.
// fp16 keeps P^T unscaled: at long K/V lengths P^T is already near fp16's subnormal range.
template <typename T>
constexpr bool kScaleInP = std::is_same_v<T, __nv_bfloat16>;

template <int D>
struct BwdCfg {
  static constexpr int BN = kSm90BwdKvRows, BQ = D == 128 ? 64 : 128;  // KV rows per CTA, query rows per tile
  static constexpr bool kPersistent = D == 64;  // see the registers below
  static constexpr int kThreads = 384;
  static constexpr int kKVBytes = BN * D * 2;
  static constexpr int kQBytes = BQ * D * 2;   // one Q or dO stage
  static constexpr int kDSBytes = BN * BQ * 2;  // one dS^T buffer
  // Q/dO/stats stages. Three let the consumer warpgroups drift further apart, but the dQ staging below
  // needs that room: on H200, two stages with whole-tile staging ran the backward 5.85 ms (2048x32K) where
  // three stages with the two dQ boxes taking turns in one buffer ran 6.37.
  static constexpr int kStages = 2;
  // dQ staging: a warpgroup's 64 x 64 fp32 dQ tile is two TMA boxes of 64 rows x 32 columns (8 KB each,
  // 128-byte swizzled).
  static constexpr int kDqBox = 64 * 128;
  static constexpr int kQOff = 2 * kKVBytes, kOOff = kQOff + kStages * kQBytes;
  static constexpr int kDSOff = kOOff + kStages * kQBytes;
  static constexpr int kDqOff = kDSOff + 2 * kDSBytes;
  static constexpr int kStatsOff = kDqOff + 2 * 2 * kDqBox;
  static constexpr int kStatsEnd = kStatsOff + kStages * static_cast<int>(sizeof(RowStats<BQ>));
  // Persistent CTAs keep two K buffers (the second here, 1024-aligned for the swizzle): the next tile's K
  // loads while the dQ products of this one still read theirs. V has one buffer: its last reader, the last
  // query tile's dP^T, is done well before the next tile needs it.
  static constexpr int kK2Off = (kStatsEnd + 1023) / 1024 * 1024;
  static constexpr int kBarOff = kPersistent ? kK2Off + kKVBytes : kStatsEnd;
  static constexpr int kSmem = kBarOff + 128 + 1024;
  static_assert(kSmem <= 232448, "over the 227 KB of shared memory a block may have");
  // setmaxnreg: the CTA starts with 168 registers a thread (65536 / 384, rounded down to 8); the producer
  // gives back what the consumers take, or their setmaxnreg.inc waits forever.
  // d64 runs a persistent grid (one CTA per SM walks K/V tiles): its CTAs have few query tiles each (8 at Lq
  // 1024), and the next tile's K/V and first query stages then load while the consumers finish the last
  // one. That loop needs more producer registers than 24; d128 (one CTA per K/V tile) ran 6 % slower with
  // 224 consumer registers.
  static constexpr int kProducerRegs = kPersistent ? 56 : 24, kConsumerRegs = kPersistent ? 224 : 240;
  // The tile's LSE and bounds read from smem while its S^T / dP^T GEMMs run (H200, 2048x32K: 5.57 against
  // 5.76 ms). d64's 128-row query tiles would hold 32 more registers, and there it cost 0.1 ms.
  static constexpr bool kStatsEarly = D == 128;
  static_assert(kProducerRegs * 128 + kConsumerRegs * 256 <= 168 * 384, "register pool overcommitted");
};

// A persistent CTA's k-th tile uses K buffer k % 2 (one CTA a tile: buffer 0), at this shared-memory offset.
template <typename C>
__device__ __forceinline__ int k_buffer(const int k) {
  return C::kPersistent ? (k & 1) : 0;
}
template <typename C>
__host__ __device__ constexpr int k_offset(const int kb) {
  return kb ? C::kK2Off : 0;
}

// The producer warp (one lane of 32) for one K/V tile of a CTA: the tile's K/V once (a persistent CTA's K
// into the buffer its tile before last used, its V behind the first query stage), then every query tile's
// LSE/D/mask ranges into smem stats and its Q and dO by TMA, two stages ahead of the consumers.
template <int D>
struct Producer {
  using C = BwdCfg<D>;
  static constexpr int BN = C::BN, BQ = C::BQ, DB = D / 64;
  unsigned char* sm;
  RowStats<BQ>* stats;
  // K/V arrived (K per buffer; one CTA a tile: both K and V on k_full[0]), query stages, K/V read for the last time
  uint64_t *k_full, *v_full, *full, *empty, *k_empty, *v_empty;
  const CUtensorMap *tm_q, *tm_do, *tm_k, *tm_v;
  const AttnGeom& g;
  const BwdArgs& a;
  float lse2_shift;
  int nq;
  int64_t rows;
  int lane;

  // K/V tile x of kv head hk, batch b: the CTA's k-th tile.
  __device__ __forceinline__ void tile(const int x, const int b, const int hk, const int k) const {
        const int j0 = x * BN, kb = k_buffer<C>(k);
        if (lane == 0) {  // K: its buffer was last read by the dQ products of tile k - 2
          if constexpr (C::kPersistent) mbar_wait(k_empty + kb, ((k >> 1) & 1) ^ 1);
          mbar_arrive_tx(k_full + kb, (C::kPersistent ? 1 : 2) * C::kKVBytes);
    #pragma unroll
          for (int cb = 0; cb < DB; ++cb)
            tma_load_4d(sm + k_offset<C>(kb) + cb * BN * 128, tm_k, k_full + kb, cb * 64, hk, j0, b);
        }
        const auto load_v = [&] {
          if (lane == 0) {
            if constexpr (C::kPersistent) {
              mbar_wait(v_empty, (k & 1) ^ 1);
              mbar_arrive_tx(v_full, C::kKVBytes);
            }
            uint64_t* bar = C::kPersistent ? v_full : k_full;
    #pragma unroll
            for (int cb = 0; cb < DB; ++cb)
              tma_load_4d(sm + C::kKVBytes + cb * BN * 128, tm_v, bar, cb * 64, hk, j0, b);
          }
        };
        // After a persistent CTA's first tile, V goes in behind the tile's first query stage: it waits for the
        // previous tile's last dP^T, which comes after the consumers freed that stage.
        const int v_at = C::kPersistent && k > 0 ? 1 : 0;
        if (v_at == 0) load_v();
        for (int it = 0; it < nq; ++it) {
          if (v_at > 0 && it == v_at) load_v();
          const int gi = k * nq + it;
          const int qt = (it + x) % nq, s = gi % C::kStages;
          mbar_wait(empty + s, ((gi / C::kStages) & 1) ^ 1);
          RowStats<BQ>& st = stats[s];
          // Every row's loads before the first store to smem: the compiler cannot tell a global load from a
          // shared store through generic pointers, and interleaved they would pay one load latency a row.
          constexpr int kRowsPerLane = BQ / 32;
          float l2[kRowsPerLane], dr[kRowsPerLane];
          int beg[kRowsPerLane], end[kRowsPerLane];
    #pragma unroll
          for (int k = 0; k < kRowsPerLane; ++k) {
            const int64_t R = static_cast<int64_t>(qt) * BQ + 32 * k + lane;
            const PackedRow pr = split_packed_row<true>(g, R);
            packed_row_range(g, b, pr, beg[k], end[k]);
            l2[k] = -INFINITY, dr[k] = 0.f;
            if (R < rows) {
              const int64_t si = packed_row_stat(g, b, hk, pr);
              l2[k] = a.lse[si] * kLog2e - lse2_shift;
              dr[k] = a.drow[si];
            }
          }
          int lo = 0, hi = INT_MAX;
    #pragma unroll
          for (int k = 0; k < kRowsPerLane; ++k) {
            if (l2[k] == -INFINITY) beg[k] = end[k] = 0;
            const int r = 32 * k + lane;
            st.lse2[r] = l2[k];
            st.drow[r] = dr[k];
            st.beg[r] = beg[k];
            st.end[r] = end[k];
            lo = max(lo, beg[k]);
            hi = min(hi, end[k]);
          }
          lo = __reduce_max_sync(0xffffffffu, lo);
          hi = __reduce_min_sync(0xffffffffu, hi);
          if (lane == 0) {
            st.lo = lo;
            st.hi = hi;
            mbar_arrive_tx(full + s, 2 * C::kQBytes);
            const int i0 = qt * (BQ / g.group);
    #pragma unroll
            for (int cb = 0; cb < DB; ++cb) {
              tma_load_5d(sm + C::kQOff + s * C::kQBytes + cb * BQ * 128, tm_q, full + s, cb * 64, 0, hk, i0, b);
              tma_load_5d(sm + C::kOOff + s * C::kQBytes + cb * BQ * 128, tm_do, full + s, cb * 64, 0, hk, i0, b);
            }
          } else {
            mbar_arrive(full + s);
          }
        }
        if (v_at > 0 && v_at == nq) load_v();
  }
};

// A warpgroup's dK/dV rows jl[0] and jl[1] (this thread's columns 2 tq + 8 i), scaled, added to what is there
// unless the call overwrites.
template <int D>
__device__ __forceinline__ void store_dkdv(const AttnGeom& g, const BwdArgs& a, const int b, const int hk,
                                           const int (&jl)[2], const int tq, const float (&dk)[D / 2],
                                           const float (&dv)[D / 2], const float dk_scale, const float dv_scale) {
      // dK/dV rows out, a row at a time with every load in flight before the first store (interleaved, the
      // compiler must assume a store may alias the next load: d64 1024x64K spent 0.37 ms of 2.28 waiting).
  #pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (jl[h] >= g.lkv) continue;
        const int64_t off = ((b * g.lkv + jl[h]) * g.kv_heads + hk) * static_cast<int64_t>(D) + 2 * tq;
        float2 ok[D / 8], ov[D / 8];
  #pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          ok[i] = ov[i] = make_float2(0.f, 0.f);
          if (!a.dkv_overwrite) {
            ok[i] = *reinterpret_cast<const float2*>(a.dk + off + 8 * i);
            ov[i] = *reinterpret_cast<const float2*>(a.dv + off + 8 * i);
          }
        }
  #pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          ok[i].x += dk_scale * dk[4 * i + 2 * h];
          ok[i].y += dk_scale * dk[4 * i + 2 * h + 1];
          ov[i].x += dv_scale * dv[4 * i + 2 * h];
          ov[i].y += dv_scale * dv[4 * i + 2 * h + 1];
          *reinterpret_cast<float2*>(a.dk + off + 8 * i) = ok[i];
          *reinterpret_cast<float2*>(a.dv + off + 8 * i) = ov[i];
        }
      }
}

}  // namespace xattn::cuda::sm90_bwd
