// Forward: flash-style online softmax over KV tiles, one task per (batch, head, query tile).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_attention.h"
#include "core/cpu_attention_tiles.h"
#include "core/thread_pool.h"

namespace xattn::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct FwdTask {
  const AttnDims& d;
  const AttnBlock& blk;
  const AttnFwdIO& io;
  int64_t qt;  // padded query tile height (multiple of 4, <= kQTile)
  int64_t dp;  // padded head dim

  void run(int64_t b, int64_t h, int64_t q0) const {
    const int64_t D = d.head_dim, H = d.heads, hkv = h / d.group(), rows = std::min(qt, blk.lq - q0);
    const float scale = d.softmax_scale();
    float* q = thread_scratch(static_cast<size_t>(2 * qt * dp + 2 * dp * kKvTile + qt * kKvTile));
    float* o = q + qt * dp;
    float* kt = o + qt * dp;
    float* v = kt + dp * kKvTile;
    float* s = v + kKvTile * dp;

    load_rows({io.q, d.dtype, ((b * blk.lq + q0) * H + h) * D, H * D, D}, rows, q, qt, dp);
    std::fill(o, o + qt * dp, 0.f);
    RowRanges rr;
    row_ranges(blk, b, q0, rows, rr);
    float m[kQTile], l[kQTile];
    std::fill(m, m + kQTile, kNegInf);
    std::fill(l, l + kQTile, 0.f);

    for (int64_t j0 = rr.union_lo; j0 < rr.union_hi; j0 += kKvTile) {
      const int64_t n = std::min(kKvTile, rr.union_hi - j0), n8 = round_up(n, kPad);
      RowView kv{io.k, d.dtype, ((b * blk.lkv + j0) * d.kv_heads + hkv) * D, d.kv_heads * D, D};
      load_rows_transposed(kv, n, kt, dp, n8);
      kv.base = io.v;
      load_rows(kv, n, v, n8, dp);
      std::fill(s, s + qt * n8, 0.f);
      gemm_acc(qt, n8, dp, q, dp, kt, n8, s, n8);  // raw scores Q.K^T
      for (int64_t r = 0; r < qt; ++r) update_row(r, rr, j0, n, n8, scale, s + r * n8, o + r * dp, m, l);
      gemm_acc(qt, dp, n8, s, n8, v, dp, o, dp);  // O += P.V
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

  // Turns row r's raw scores into unnormalised probabilities against its running max, rescaling the
  // row's accumulated output and sum when the max grows. Columns the row cannot see get probability 0.
  void update_row(int64_t r, const RowRanges& rr, int64_t j0, int64_t n, int64_t n8, float scale, float* sr,
                  float* orow, float* m, float* l) const {
    const int64_t a = std::clamp<int64_t>(rr.lo[r] - j0, 0, n), e = std::clamp<int64_t>(rr.hi[r] - j0, 0, n);
    if (a >= e) {
      std::fill(sr, sr + n8, 0.f);
      return;
    }
    const float mx = *std::max_element(sr + a, sr + e) * scale;  // scale > 0: max commutes with scaling
    const float m_new = std::max(m[r], mx);
    const float alpha = std::exp(m[r] - m_new);  // 0 on the first visible tile (m = -inf)
    const float psum = exp_shifted(sr + a, scale, m_new, sr + a, e - a);
    std::fill(sr, sr + a, 0.f);
    std::fill(sr + e, sr + n8, 0.f);
    l[r] = l[r] * alpha + psum;
    m[r] = m_new;
    if (alpha != 1.f)
      for (int64_t c = 0; c < dp; ++c) orow[c] *= alpha;
  }
};

}  // namespace

void attn_forward(const AttnDims& d, const AttnBlock& blk, const AttnFwdIO& io) {
  if (blk.lq <= 0) return;
  const int64_t qt = std::min(kQTile, round_up(blk.lq, 4)), n_qt = ceil_div(blk.lq, qt);
  const FwdTask task{d, blk, io, qt, round_up(d.head_dim, kPad)};
  ThreadPool::shared().parallel_for(d.batch * d.heads * n_qt, [&](int64_t i) {
    task.run(i / (d.heads * n_qt), (i / n_qt) % d.heads, (i % n_qt) * qt);
  });
}

}  // namespace xattn::cpu
