// Forward: flash-style online softmax over KV tiles, one task per (batch, head, query tile).
// Scores are kept transposed, S^T = K.Q^T [keys x queries], so each KV tile is read as plain contiguous
// rows and the softmax runs eight queries at a time across SIMD lanes.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_attention.h"
#include "core/cpu_attention_simd.h"
#include "core/cpu_attention_tiles.h"
#include "core/thread_pool.h"

namespace xattn::cpu {

namespace {

using simd::vf8;
using simd::vi8;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// One online-softmax step on raw scores st [n8 x qt]: turns them into probabilities against each query's
// running max m (invisible keys get 0), updates the running sum l and returns in alpha the factor the
// query's accumulated output must be rescaled by.
XATTN_SIMD_CLONES void softmax_step(float* st, int64_t n8, int64_t qt, const LaneRanges& lr, float scale, float* m,
                                    float* l, float* alpha) {
  const vf8 vscale = simd::splat(scale), ninf = simd::splat(kNegInf);
  for (int64_t g = 0; g < qt; g += 8) {
    const vi8 lo = simd::load8_i32(lr.lo + g), hi = simd::load8_i32(lr.hi + g);
    vf8 mx = ninf;
    for (int64_t j = 0; j < n8; ++j) {
      const vi8 jv = simd::splat_i(static_cast<int32_t>(j));
      const vf8 s = simd::load8(st + j * qt + g);
      mx = (jv >= lo) & (jv < hi) & (s > mx) ? s : mx;
    }
    const vf8 m_old = simd::load8(m + g);
    mx *= vscale;  // scale > 0: the max commutes with scaling
    const vf8 m_new = m_old > mx ? m_old : mx;
    // Queries that have seen no key yet keep m = -inf and alpha = 1 (exp(-inf - -inf) would be NaN).
    const vf8 a = m_new == ninf ? simd::splat(1.f) : simd::exp8(m_old - m_new);
    vf8 sum = simd::splat(0.f);
    for (int64_t j = 0; j < n8; ++j) {
      const vi8 jv = simd::splat_i(static_cast<int32_t>(j));
      const vf8 p = (jv >= lo) & (jv < hi) ? simd::exp8(simd::load8(st + j * qt + g) * vscale - m_new) : simd::splat(0.f);
      simd::store8(st + j * qt + g, p);
      sum += p;
    }
    simd::store8(l + g, simd::load8(l + g) * a + sum);
    simd::store8(m + g, m_new);
    simd::store8(alpha + g, a);
  }
}

struct FwdTask {
  const AttnDims& d;
  const AttnBlock& blk;
  const AttnFwdIO& io;
  int64_t qt;  // padded query tile height (multiple of 8, <= kQTile)
  int64_t dp;  // padded head dim

  void run(int64_t b, int64_t h, int64_t q0) const {
    const int64_t D = d.head_dim, H = d.heads, hkv = h / d.group(), rows = std::min(qt, blk.lq - q0);
    const float scale = d.softmax_scale();
    auto [qt_buf, o, k, v, st] = scratch_slices<5>({qt * dp, qt * dp, kKvTile * dp, kKvTile * dp, kKvTile * qt});

    load_rows_transposed({io.q, d.dtype, ((b * blk.lq + q0) * H + h) * D, H * D, D}, rows, qt_buf, dp, qt);
    std::fill(o, o + qt * dp, 0.f);
    RowRanges rr;
    row_ranges(blk, b, q0, rows, rr);
    LaneRanges lr;
    float m[kQTile], l[kQTile], alpha[kQTile];
    std::fill(m, m + kQTile, kNegInf);
    std::fill(l, l + kQTile, 0.f);

    for (int64_t j0 = rr.union_lo; j0 < rr.union_hi; j0 += kKvTile) {
      const int64_t n = std::min(kKvTile, rr.union_hi - j0), n8 = round_up(n, kPad);
      RowView kv{io.k, d.dtype, ((b * blk.lkv + j0) * d.kv_heads + hkv) * D, d.kv_heads * D, D};
      load_rows(kv, n, k, n8, dp);
      kv.base = io.v;
      load_rows(kv, n, v, n8, dp);
      if (j0 + kKvTile < rr.union_hi) {  // overlap the next tile's memory traffic with this tile's math
        const int64_t next = std::min(kKvTile, rr.union_hi - j0 - kKvTile);
        RowView nk{io.k, d.dtype, kv.first + kKvTile * kv.stride, kv.stride, D};
        prefetch_rows(nk, next);
        nk.base = io.v;
        prefetch_rows(nk, next);
      }
      lane_ranges(rr, j0, n, lr);
      std::fill(st, st + n8 * qt, 0.f);
      gemm_acc(n8, qt, dp, k, dp, qt_buf, qt, st, qt);  // S^T = K.Q^T
      softmax_step(st, n8, qt, lr, scale, m, l, alpha);
      for (int64_t r = 0; r < rows; ++r)
        if (alpha[r] != 1.f)
          for (int64_t c = 0; c < dp; ++c) o[r * dp + c] *= alpha[r];
      gemm_acc_at(qt, dp, n8, st, qt, v, dp, o, dp);  // O += P.V with P^T = st
    }

    for (int64_t r = 0; r < rows; ++r) {
      float* out = io.o + ((b * blk.lq + q0 + r) * H + h) * D;
      float& lse = io.lse[(b * H + h) * blk.lq + q0 + r];
      if (l[r] > 0.f) {
        const float inv = 1.f / l[r];
        for (int64_t c = 0; c < D; ++c) out[c] = o[r * dp + c] * inv;
        lse = m[r] + std::log(l[r]);
      } else {  // no visible key in this block
        std::fill(out, out + D, 0.f);
        lse = kNegInf;
      }
    }
  }
};

}  // namespace

void attn_forward(const AttnDims& d, const AttnBlock& blk, const AttnFwdIO& io) {
  if (blk.lq <= 0) return;
  const int64_t qt = std::min(kQTile, round_up(blk.lq, 8)), n_qt = ceil_div(blk.lq, qt);
  const FwdTask task{d, blk, io, qt, round_up(d.head_dim, kPad)};
  ThreadPool::shared().parallel_for(d.batch * d.heads * n_qt, [&](int64_t i) {
    task.run(i / (d.heads * n_qt), (i / n_qt) % d.heads, (i % n_qt) * qt);
  });
}

}  // namespace xattn::cpu
