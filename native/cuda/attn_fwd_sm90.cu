// Hopper flash forward (sm_90a): warp-specialised CTA of one producer warpgroup (TMA loads of Q once and of
// K/V tiles into two stages each, completing on mbarriers) and NWG consumer warpgroups of 64 packed query
// rows each. S = Q K^T and O += P V run on wgmma (Q, K, V from 128B-swizzled smem; P from registers).
// Each consumer issues S_j = Q K_j before O += P_{j-1} V_{j-1}, so the softmax of tile j runs while the tensor
// cores do the PV product of tile j-1 (and the other warpgroup's work). Writes float32 O and natural-log LSE
// like the mma.sync kernel (split-KV partials when a.splits > 1).
#include <algorithm>
#include <climits>

#include "core/error.h"
#include "cuda/attn_tile.cuh"
#include "cuda/cuda_check.h"
#include "cuda/scalar_io.cuh"
#include "cuda/sm90_sync.cuh"
#include "cuda/sm90_tma.h"
#include "cuda/sm90_wgmma.cuh"

namespace xattn::cuda {
namespace {

// KV rows per tile. d64 takes 192: its GEMMs per tile are half d128's while the per-tile costs (barriers,
// row maxima, the rescale test) stay, so a longer tile amortises them (s and P fit in the registers).
constexpr int fwd_kv_rows(int d) { return d == 64 ? 192 : 128; }

template <int D, int NWG>
struct FwdCfg {
  static constexpr int BM = 64 * NWG, kBN = fwd_kv_rows(D);
  static constexpr int kThreads = 128 * (NWG + 1);
  static constexpr int kQBytes = BM * D * 2;
  static constexpr int kKVBytes = kBN * D * 2;  // one K or V stage
  static constexpr int kBarOff = kQBytes + 4 * kKVBytes;
  static constexpr int kSmem = kBarOff + 128 + 1024;  // + barriers + alignment slack
  // setmaxnreg: the CTA starts with 65536 / kThreads registers a thread (rounded down to 8); the producer
  // gives back what the consumers take, or their setmaxnreg.inc waits forever.
  static constexpr int kProducerRegs = 24, kConsumerRegs = NWG == 2 ? 240 : 160;
  static_assert(kProducerRegs * 128 + kConsumerRegs * 128 * NWG <= 65536 / kThreads / 8 * 8 * kThreads,
                "register pool overcommitted");
};

template <typename T, int D, int NWG>
__global__ void __launch_bounds__(FwdCfg<D, NWG>::kThreads, 1)
    fwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                    const __grid_constant__ CUtensorMap tm_v, AttnGeom g, FwdArgs a, int tiles_per_split) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = FwdCfg<D, NWG>;
  constexpr int BM = C::BM, kBN = C::kBN, DB = D / 64, SN = kBN / 8;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* Qs = align1024(smem_raw);
  unsigned char* Ks = Qs + C::kQBytes;       // [2 stages]
  unsigned char* Vs = Ks + 2 * C::kKVBytes;  // [2 stages]
  uint64_t* bars = reinterpret_cast<uint64_t*>(Qs + C::kBarOff);
  uint64_t *q_full = bars, *k_full = bars + 1, *v_full = bars + 3, *k_empty = bars + 5, *v_empty = bars + 7;
  __shared__ int row_beg[BM], row_end[BM], s_lo, s_hi;

  const int tid = threadIdx.x;
  const int b = blockIdx.y / g.kv_heads, hk = blockIdx.y % g.kv_heads, split = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  if (tid == 0) {
    s_lo = INT_MAX;
    s_hi = 0;
    mbar_init(q_full, 1);
    for (int s = 0; s < 2; ++s) {
      mbar_init(k_full + s, 1);
      mbar_init(v_full + s, 1);
      mbar_init(k_empty + s, 4 * NWG);  // one arrival per consumer warp
      mbar_init(v_empty + s, 4 * NWG);
    }
    mbar_init_fence();
  }
  __syncthreads();
  // Visible range of each packed row; the CTA walks only the KV tiles some row sees.
  for (int r = tid; r < BM; r += C::kThreads) {
    int rb, re;
    packed_row_range(g, b, row0 + r, rb, re);
    row_beg[r] = rb;
    row_end[r] = re;
    if (rb < re) {
      atomicMin(&s_lo, rb);
      atomicMax(&s_hi, re);
    }
  }
  __syncthreads();
  const int n_tiles = static_cast<int>((g.lkv + kBN - 1) / kBN);
  int tb = split * tiles_per_split, te = min(n_tiles, tb + tiles_per_split);
  if (s_lo >= s_hi) {
    te = tb;
  } else {
    tb = max(tb, s_lo / kBN);
    te = min(te, (s_hi + kBN - 1) / kBN);
  }
  const int n = max(0, te - tb);

  if (tid < 128) {  // producer warpgroup: one thread issues every load
    regs_dealloc<C::kProducerRegs>();
    if (tid == 0 && n > 0) {
      mbar_arrive_tx(q_full, C::kQBytes);
#pragma unroll
      for (int cb = 0; cb < DB; ++cb)
        tma_load_5d(Qs + cb * BM * 128, &tm_q, q_full, cb * 64, 0, hk, static_cast<int>(row0 / g.group), b);
      for (int it = 0; it < n; ++it) {
        const int s = it & 1, j0 = (tb + it) * kBN;
        const uint32_t ph = (it >> 1) & 1;
        mbar_wait(k_empty + s, ph ^ 1);
        mbar_arrive_tx(k_full + s, C::kKVBytes);
#pragma unroll
        for (int cb = 0; cb < DB; ++cb)
          tma_load_4d(Ks + s * C::kKVBytes + cb * kBN * 128, &tm_k, k_full + s, cb * 64, hk, j0, b);
        mbar_wait(v_empty + s, ph ^ 1);
        mbar_arrive_tx(v_full + s, C::kKVBytes);
#pragma unroll
        for (int cb = 0; cb < DB; ++cb)
          tma_load_4d(Vs + s * C::kKVBytes + cb * kBN * 128, &tm_v, v_full + s, cb * 64, hk, j0, b);
      }
    }
    return;
  }
  regs_alloc<C::kConsumerRegs>();

  // Warp-uniform by construction. At d128, read from lane 0 so the compiler knows and keeps the Q descriptor
  // in uniform registers; at d64 that made the kernel slower (H200, 1024x64K: 0.62 against 0.585 ms).
  const int wg = D == 128 ? __shfl_sync(0xffffffffu, tid / 128 - 1, 0) : tid / 128 - 1, warp = (tid / 32) & 3,
            lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int rl = wg * 64 + warp * 16 + gq;  // this thread's tile rows: rl and rl + 8
  const int rb[2] = {row_beg[rl], row_beg[rl + 8]}, re[2] = {row_end[rl], row_end[rl + 8]};
  // Tiles inside every row's range of this warp need no per-element mask.
  const int w_beg = __reduce_max_sync(0xffffffffu, max(rb[0], rb[1]));
  const int w_end = __reduce_min_sync(0xffffffffu, min(re[0], re[1]));
  const float sl2 = g.scale * kLog2e;
  const uint32_t k_base = smem_addr(Ks), v_base = smem_addr(Vs);
  const uint64_t q_desc = sw128_desc(smem_addr(Qs) + wg * 64 * 128, 0);  // steps along K with desc_plus

  float o[D / 2], s[kBN / 2];
  uint32_t p[kBN / 16][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;

  auto warp_arrive = [&](uint64_t* bar) {
    if (lane == 0) mbar_arrive(bar);
  };
  auto qk = [&](int st) {  // S = Q K^T from stage st
    const uint64_t k_desc = sw128_desc(k_base + st * C::kKVBytes, 0);
    reg_fence(s);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t col = (kk & 3) * 32;  // 16 elements along K inside the 128-byte row
      Wgmma<T, kBN>::template ss<0, 0>(s, desc_plus(q_desc, (kk >> 2) * BM * 128 + col),
                                       desc_plus(k_desc, (kk >> 2) * kBN * 128 + col), kk > 0);
    }
    wgmma_commit();
  };
  auto pv = [&](int st) {  // O += P V from stage st (V is MN-major: trans-b)
    reg_fence(o);
    reg_fence(p);
    const uint64_t v_desc = sw128_desc(v_base + st * C::kKVBytes, kBN * 128);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) Wgmma<T, D>::template rs<1>(o, p[kk], desc_plus(v_desc, kk * 2048), 1);
    wgmma_commit();
  };
  // Masked, scaled, base-2 online softmax of S for the tile at KV row j0: S becomes P (unnormalised), alpha
  // the rescale of O.
  auto softmax_tile = [&](int j0, auto masked) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < SN; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[4 * i + e];
        if constexpr (decltype(masked)::value) {
          const int col = j0 + 8 * i + 2 * tq + (e & 1);
          if (col < rb[e >> 1] || col >= re[e >> 1]) x = -INFINITY;
          s[4 * i + e] = x;
        }
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    float mu[2], sum[2] = {0.f, 0.f};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float mn = fmaxf(m[h], quad_max(mx[h]) * sl2);
      mu[h] = mn == -INFINITY ? 0.f : mn;
      alpha[h] = fast_exp2(m[h] - mu[h]);
      m[h] = mn;
    }
#pragma unroll
    for (int i = 0; i < SN; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = fast_exp2(fmaf(s[4 * i + e], sl2, -mu[e >> 1]));
        s[4 * i + e] = pe;
        sum[e >> 1] += pe;
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + sum[h];
  };
  auto softmax = [&](int j) {
    const int j0 = j * kBN;
    with_bounds_tests(j0 < w_beg || j0 + kBN > w_end, [&](auto masked) { softmax_tile(j0, masked); });
  };
  auto pack_p = [&]() {
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e) p[kk][e] = Mma<T>::pack(s[8 * kk + 2 * e], s[8 * kk + 2 * e + 1]);
  };

  if (n > 0) {
    mbar_wait(q_full, 0);
    mbar_wait(k_full, 0);
    qk(0);
    wgmma_wait<0>();
    reg_fence(s);
    warp_arrive(k_empty);
    softmax(tb);
    pack_p();
    for (int it = 1; it < n; ++it) {
      const int st = it & 1, pst = st ^ 1;
      mbar_wait(k_full + st, (it >> 1) & 1);
      qk(st);
      mbar_wait(v_full + pst, ((it - 1) >> 1) & 1);
      pv(pst);
      wgmma_wait<1>();  // S_j is ready; P_{j-1} V_{j-1} may still run
      reg_fence(s);
      warp_arrive(k_empty + st);
      softmax(tb + it);
      wgmma_wait<0>();
      reg_fence(o);
      reg_fence(p);
      warp_arrive(v_empty + pst);
      // Once the row maxima settle most tiles leave them unchanged (alpha == 1): skip the rescale then.
      if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          o[4 * i] *= alpha[0];
          o[4 * i + 1] *= alpha[0];
          o[4 * i + 2] *= alpha[1];
          o[4 * i + 3] *= alpha[1];
        }
      }
      pack_p();
    }
    const int lst = (n - 1) & 1;
    mbar_wait(v_full + lst, ((n - 1) >> 1) & 1);
    pv(lst);
    wgmma_wait<0>();
    reg_fence(o);
    reg_fence(p);
  }

  float* od = a.splits > 1 ? a.o_part + split * (g.batch * g.lq * g.heads * D) : a.o;
  float* ld = a.splits > 1 ? a.lse_part + split * (g.batch * g.heads * g.lq) : a.lse;
  const int64_t rows = g.lq * g.group;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float lt = quad_sum(l[h]);
    const int64_t r = row0 + rl + 8 * h;
    if (r >= rows) continue;
    const float inv = lt > 0.f ? 1.f / lt : 0.f;
    const int64_t at = packed_row_offset(g, b, hk, r) + 2 * tq;
    if (a.o_out) {  // the final O, rounded once, as the cast kernel would round it
      T* dst = static_cast<T*>(a.o_out) + at;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        alignas(4) const T pair[2] = {from_f32<T>(o[4 * i + 2 * h] * inv), from_f32<T>(o[4 * i + 2 * h + 1] * inv)};
        *reinterpret_cast<uint32_t*>(dst + 8 * i) = *reinterpret_cast<const uint32_t*>(pair);
      }
    } else {
      float* dst = od + at;
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
        *reinterpret_cast<float2*>(dst + 8 * i) = make_float2(o[4 * i + 2 * h] * inv, o[4 * i + 2 * h + 1] * inv);
    }
    if (tq == 0) ld[packed_row_stat(g, b, hk, r)] = lt > 0.f ? (m[h] + __log2f(lt)) * kLn2 : -INFINITY;
  }
#endif
}

constexpr int kFwdWarpgroups = 2;

template <typename T, int D>
void launch(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  using C = FwdCfg<D, kFwdWarpgroups>;
  const CUtensorMap tq = packed_rows_map(a.q, t, g, C::BM);
  constexpr int kBN = C::kBN;
  const CUtensorMap tk = kv_rows_map(a.k, t, g, kBN), tv = kv_rows_map(a.v, t, g, kBN);
  auto kern = fwd_sm90_kernel<T, D, kFwdWarpgroups>;
  XATTN_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem));
  const int n_tiles = static_cast<int>((g.lkv + kBN - 1) / kBN);
  const int per_split = (n_tiles + a.splits - 1) / a.splits;
  const dim3 grid(static_cast<unsigned>((g.lq * g.group + C::BM - 1) / C::BM),
                  static_cast<unsigned>(g.batch * g.kv_heads), a.splits);
  kern<<<grid, C::kThreads, C::kSmem, s>>>(tq, tk, tv, g, a, per_split);
  XATTN_CUDA_LAUNCHED("attn_fwd (sm90)");
}

}  // namespace

int sm90_fwd_splits(const AttnGeom& g, int sm_count, int cap, int min_waves) {
  const int64_t ctas = ((g.lq * g.group + 64 * kFwdWarpgroups - 1) / (64 * kFwdWarpgroups)) * g.batch * g.kv_heads;
  const int kBN = fwd_kv_rows(static_cast<int>(g.head_dim));
  const int n_tiles = static_cast<int>((g.lkv + kBN - 1) / kBN);
  const int most = std::max(1, std::min(cap > 0 ? cap : 64, n_tiles / 2));
  // One CTA per SM: pick the fewest splits whose last wave is nearly full, else the fullest. With
  // min_waves > 1, grids of fewer waves are passed over: a one-wave grid doubles its time when a
  // concurrent kernel (an NCCL transfer) holds a few SMs at launch; several waves absorb that.
  int best = 1;
  double best_eff = 0;
  for (int sp = 1; sp <= most; ++sp) {
    const int64_t total = ctas * sp, waves = (total + sm_count - 1) / sm_count;
    if (waves < min_waves && sp < most) continue;
    const double eff = static_cast<double>(total) / static_cast<double>(waves * sm_count);
    if (eff > best_eff + 1e-9) {
      best_eff = eff;
      best = sp;
    }
    if (eff >= 0.85) break;
  }
  const int per = (n_tiles + best - 1) / best;  // no empty trailing split
  return (n_tiles + per - 1) / per;
}

void sm90_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s) {
  require(sm90_supported(t, g), ErrorCode::Internal, "sm90 attn_fwd called for an unsupported shape");
  if (t == DType::BF16) return g.head_dim == 64 ? launch<__nv_bfloat16, 64>(t, g, a, s) : launch<__nv_bfloat16, 128>(t, g, a, s);
  return g.head_dim == 64 ? launch<__half, 64>(t, g, a, s) : launch<__half, 128>(t, g, a, s);
}

}  // namespace xattn::cuda
