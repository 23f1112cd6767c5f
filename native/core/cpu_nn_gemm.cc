#include "core/cpu_nn_gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"

namespace xattn::cpu {

namespace {

// Register tile MR x NR (6 x 16: twelve 8-wide accumulators fit the 16 AVX2 registers), cache blocks
// MC x KC of A (L2) and KC x NC of B.
constexpr int MR = 6, NR = 16;
constexpr int64_t MC = 96, NC = 256, KC = 256;
static_assert(MC % MR == 0 && NC % NR == 0, "cache blocks hold whole register tiles");

using v8 = float __attribute__((vector_size(32)));

// c[MR][NR] = sum over kc of packed a (kc x MR) times packed b (kc x NR).
static inline __attribute__((always_inline)) void micro_body(int64_t kc, const float* __restrict a,
                                                             const float* __restrict b, float* __restrict c) {
  v8 acc[MR][2];
  std::memset(acc, 0, sizeof acc);
  for (int64_t p = 0; p < kc; ++p) {
    v8 b0, b1;
    std::memcpy(&b0, b + p * NR, sizeof b0);
    std::memcpy(&b1, b + p * NR + 8, sizeof b1);
    for (int r = 0; r < MR; ++r) {
      const float ar = a[p * MR + r];
      acc[r][0] += ar * b0;
      acc[r][1] += ar * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    std::memcpy(c + r * NR, &acc[r][0], sizeof(v8));
    std::memcpy(c + r * NR + 8, &acc[r][1], sizeof(v8));
  }
}

void micro_generic(int64_t kc, const float* a, const float* b, float* c) { micro_body(kc, a, b, c); }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float* a, const float* b, float* c) {
  micro_body(kc, a, b, c);
}
#endif

using MicroKernel = void (*)(int64_t, const float*, const float*, float*);

MicroKernel pick_micro_kernel() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return micro_avx2;
#endif
  return micro_generic;
}

const MicroKernel kMicro = pick_micro_kernel();

// Element (row, col) of a row-major [rows x cols] matrix of dtype T, read as float32.
template <DType T>
inline float at(const void* base, int64_t row, int64_t col, int64_t cols) {
  return load_as_f32(base, T, static_cast<size_t>(row * cols + col));
}

// Packs op(A)[i0:i0+mc, p0:p0+kc] as micro-panels of MR rows (k-major inside), zero-padding short rows.
template <DType T>
void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    for (int64_t p = 0; p < kc; ++p) {
      for (int r = 0; r < MR; ++r) {
        const int64_t i = i0 + ip + r;
        float v = 0.f;
        if (ip + r < mc) v = g.trans_a ? at<T>(g.a, p0 + p, i, g.m) : at<T>(g.a, i, p0 + p, g.k);
        *out++ = v;
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as micro-panels of NR columns (k-major inside), zero-padding.
template <DType T>
void pack_b(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    for (int64_t p = 0; p < kc; ++p) {
      for (int c = 0; c < NR; ++c) {
        const int64_t j = j0 + jp + c;
        float v = 0.f;
        if (jp + c < nc) v = g.trans_b ? at<T>(g.b, j, p0 + p, g.k) : at<T>(g.b, p0 + p, j, g.n);
        *out++ = v;
      }
    }
  }
}

template <typename Fn>
void by_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: fn(std::integral_constant<DType, DType::F32>{}); break;
    case DType::BF16: fn(std::integral_constant<DType, DType::BF16>{}); break;
    default: fn(std::integral_constant<DType, DType::F16>{}); break;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// tile[mc x nc] = sum over k in [k0, k1) of op(A)·op(B) for the block at (i0, j0), in a fixed order.
void compute_tile(const GemmArgs& g, int64_t i0, int64_t mc, int64_t j0, int64_t nc, int64_t k0, int64_t k1,
                  float* tile) {
  thread_local std::vector<float> abuf, bbuf;
  abuf.resize(static_cast<size_t>(MC * KC));
  bbuf.resize(static_cast<size_t>(KC * NC));
  float cbuf[MR * NR];
  std::fill(tile, tile + mc * nc, 0.f);
  for (int64_t kb = k0; kb < k1; kb += KC) {
    const int64_t kc = std::min(KC, k1 - kb);
    by_dtype(g.a_dtype, [&](auto t) { pack_a<decltype(t)::value>(g, i0, mc, kb, kc, abuf.data()); });
    by_dtype(g.b_dtype, [&](auto t) { pack_b<decltype(t)::value>(g, kb, kc, j0, nc, bbuf.data()); });
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t cols = std::min<int64_t>(NR, nc - jp);
      for (int64_t ip = 0; ip < mc; ip += MR) {
        const int64_t rows = std::min<int64_t>(MR, mc - ip);
        kMicro(kc, abuf.data() + ip * kc, bbuf.data() + jp * kc, cbuf);
        for (int64_t r = 0; r < rows; ++r) {
          float* dst = tile + (ip + r) * nc + jp;
          for (int64_t c = 0; c < cols; ++c) dst[c] += cbuf[r * NR + c];
        }
      }
    }
  }
}

// C block = (accumulate ? C : 0) + alpha * tile.
void store_tile(const GemmArgs& g, int64_t i0, int64_t mc, int64_t j0, int64_t nc, const float* tile) {
  for (int64_t r = 0; r < mc; ++r) {
    for (int64_t c = 0; c < nc; ++c) {
      const size_t idx = static_cast<size_t>((i0 + r) * g.n + j0 + c);
      const float base = g.accumulate ? load_as_f32(g.c, g.c_dtype, idx) : 0.f;
      store_from_f32(g.c, g.c_dtype, idx, base + g.alpha * tile[r * nc + c]);
    }
  }
}

// K splits when there are too few output tiles to keep threads busy (weight gradients over many tokens).
// Depends on the shape only.
int64_t k_splits(int64_t tiles, int64_t k) {
  if (tiles >= 8) return 1;
  return std::clamp<int64_t>(k / (8 * KC), 1, 16);
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const int64_t tm = ceil_div(g.m, MC), tn = ceil_div(g.n, NC), tiles = tm * tn;
  const int64_t splits = k_splits(tiles, g.k);
  ThreadPool& pool = ThreadPool::shared();
  if (splits == 1) {
    pool.parallel_for(tiles, [&](int64_t t) {
      const int64_t i0 = (t / tn) * MC, j0 = (t % tn) * NC;
      const int64_t mc = std::min(MC, g.m - i0), nc = std::min(NC, g.n - j0);
      thread_local std::vector<float> tile;
      tile.resize(static_cast<size_t>(MC * NC));
      compute_tile(g, i0, mc, j0, nc, 0, g.k, tile.data());
      store_tile(g, i0, mc, j0, nc, tile.data());
    });
    return;
  }
  // Split K into fixed chunks (multiples of KC), compute partial tiles, then add them in split order.
  const int64_t chunk = ceil_div(ceil_div(g.k, splits), KC) * KC;
  std::vector<float> partial(static_cast<size_t>(tiles * splits * MC * NC));
  pool.parallel_for(tiles * splits, [&](int64_t t) {
    const int64_t tile = t / splits, s = t % splits;
    const int64_t i0 = (tile / tn) * MC, j0 = (tile % tn) * NC;
    const int64_t k0 = std::min(g.k, s * chunk), k1 = std::min(g.k, k0 + chunk);
    compute_tile(g, i0, std::min(MC, g.m - i0), j0, std::min(NC, g.n - j0), k0, k1, partial.data() + t * MC * NC);
  });
  pool.parallel_for(tiles, [&](int64_t tile) {
    const int64_t i0 = (tile / tn) * MC, j0 = (tile % tn) * NC;
    const int64_t mc = std::min(MC, g.m - i0), nc = std::min(NC, g.n - j0);
    float* sum = partial.data() + tile * splits * MC * NC;
    for (int64_t s = 1; s < splits; ++s) {
      const float* p = sum + s * MC * NC;
      for (int64_t i = 0; i < mc * nc; ++i) sum[i] += p[i];
    }
    store_tile(g, i0, mc, j0, nc, sum);
  });
}

}  // namespace xattn::cpu
