// Backward in two race-free passes (recomputing P from the saved LSE, as flash attention does):
//   pass A, one task per (batch, kv head, kv tile): dK, dV summed over the group's query heads and rows;
//   pass B, one task per (batch, head, query tile): dQ summed over the visible kv tiles (recomputing S and
//   dP once more instead of sharing dQ between tasks).
// Every accumulator is owned by one task and summed in a fixed order, so results are deterministic.
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

// st = S^T (raw scores) and dpt = dP^T, both [n8 x qt]; overwrites st with
// dS^T = P^T * (dP^T - drow), P = exp(S * scale - lse), zero where the key is invisible to the query or
// the query's LSE is -inf (selected, never multiplied, so no NaN leaks from exp(+inf)).
XATTN_SIMD_CLONES void dscores_transposed(float* st, const float* dpt, int64_t n8, int64_t qt, const LaneRanges& lr,
                                          float scale, const float* lse, const float* drow) {
  const vf8 vscale = simd::splat(scale), ninf = simd::splat(-std::numeric_limits<float>::infinity());
  for (int64_t g = 0; g < qt; g += 8) {
    const vi8 lo = simd::load8_i32(lr.lo + g), hi = simd::load8_i32(lr.hi + g);
    const vf8 vlse = simd::load8(lse + g), vdrow = simd::load8(drow + g);
    const vi8 live = vlse > ninf;
    for (int64_t j = 0; j < n8; ++j) {
      const vi8 jv = simd::splat_i(static_cast<int32_t>(j));
      const vf8 p = simd::exp8(simd::load8(st + j * qt + g) * vscale - vlse);
      const vf8 ds = p * (simd::load8(dpt + j * qt + g) - vdrow);
      simd::store8(st + j * qt + g, live & (jv >= lo) & (jv < hi) ? ds : simd::splat(0.f));
    }
  }
}

struct BwdCtx {
  const AttnDims& d;
  const AttnBlock& blk;
  const AttnBwdIO& io;
  int64_t qt;  // padded query tile height
  int64_t dp;  // padded head dim
  float scale;

  RowView q_rows(const void* base, int64_t b, int64_t h, int64_t q0) const {
    return {base, d.dtype, ((b * blk.lq + q0) * d.heads + h) * d.head_dim, d.heads * d.head_dim, d.head_dim};
  }
  RowView kv_rows(const void* base, int64_t b, int64_t hkv, int64_t j0) const {
    return {base, d.dtype, ((b * blk.lkv + j0) * d.kv_heads + hkv) * d.head_dim, d.kv_heads * d.head_dim,
            d.head_dim};
  }

  // Query-side state of one (batch, head, query tile): LSE and drow per row (padding rows get -inf, 0)
  // and visible ranges.
  struct QSide {
    int64_t rows;
    float lse[kQTile], drow[kQTile];
    RowRanges rr;
  };
  void load_q_side(int64_t b, int64_t h, int64_t q0, QSide& qs) const {
    qs.rows = std::min(qt, blk.lq - q0);
    row_ranges(blk, b, q0, qs.rows, qs.rr);
    const int64_t base = (b * d.heads + h) * blk.lq + q0;
    for (int64_t r = 0; r < kQTile; ++r) {
      qs.lse[r] = r < qs.rows ? io.lse[base + r] : -std::numeric_limits<float>::infinity();
      qs.drow[r] = r < qs.rows ? io.drow[base + r] : 0.f;
    }
  }

  // P = exp(S * scale - lse) and dS = P * (dP - drow) for a query tile against kv rows [j0, j0 + n), both
  // [qt x n8]; zero wherever the row cannot see the key or has LSE = -inf (no NaN from -inf - -inf).
  void probs_and_dscores(const QSide& qs, const float* q, const float* dout, const float* kt, const float* vt,
                         int64_t j0, int64_t n, int64_t n8, float* p, float* ds) const {
    std::fill(p, p + qt * n8, 0.f);
    gemm_acc(qt, n8, dp, q, dp, kt, n8, p, n8);  // S
    std::fill(ds, ds + qt * n8, 0.f);
    gemm_acc(qt, n8, dp, dout, dp, vt, n8, ds, n8);  // dP = dO.V^T
    for (int64_t r = 0; r < qt; ++r) {
      float* pr = p + r * n8;
      float* dr = ds + r * n8;
      const int64_t a = std::clamp<int64_t>(qs.rr.lo[r] - j0, 0, n), e = std::clamp<int64_t>(qs.rr.hi[r] - j0, 0, n);
      if (a >= e || !(qs.lse[r] > -std::numeric_limits<float>::infinity())) {
        std::fill(pr, pr + n8, 0.f);
        std::fill(dr, dr + n8, 0.f);
        continue;
      }
      exp_shifted(pr + a, scale, qs.lse[r], pr + a, e - a);
      for (int64_t c = a; c < e; ++c) dr[c] = pr[c] * (dr[c] - qs.drow[r]);
      std::fill(pr, pr + a, 0.f);
      std::fill(pr + e, pr + n8, 0.f);
      std::fill(dr, dr + a, 0.f);
      std::fill(dr + e, dr + n8, 0.f);
    }
  }

  // out[first + c * stride + x] += factor * acc[c * dp + x] for the n rows of a [n x dp] tile.
  void add_rows(const float* acc, int64_t n, float factor, float* out, int64_t first, int64_t stride) const {
    for (int64_t c = 0; c < n; ++c) {
      float* dst = out + first + c * stride;
      for (int64_t x = 0; x < d.head_dim; ++x) dst[x] += factor * acc[c * dp + x];
    }
  }

  void dkdv_task(int64_t b, int64_t hkv, int64_t j0) const {
    const int64_t n = std::min(kKvTile, blk.lkv - j0), n8 = round_up(n, kPad);
    const int64_t tile = kKvTile * dp;
    auto [kt, vt, dk, dv, q, dout, p, ds] =
        scratch_slices<8>({tile, tile, tile, tile, qt * dp, qt * dp, qt * kKvTile, qt * kKvTile});
    load_rows_transposed(kv_rows(io.k, b, hkv, j0), n, kt, dp, n8);
    load_rows_transposed(kv_rows(io.v, b, hkv, j0), n, vt, dp, n8);
    std::fill(dk, dk + n8 * dp, 0.f);
    std::fill(dv, dv + n8 * dp, 0.f);
    QSide qs;
    for (int64_t h = hkv * d.group(); h < (hkv + 1) * d.group(); ++h) {
      for (int64_t q0 = 0; q0 < blk.lq; q0 += qt) {
        row_ranges(blk, b, q0, std::min(qt, blk.lq - q0), qs.rr);
        if (qs.rr.union_hi <= j0 || qs.rr.union_lo >= j0 + n) continue;  // nothing visible in this kv tile
        load_q_side(b, h, q0, qs);
        load_rows(q_rows(io.q, b, h, q0), qs.rows, q, qt, dp);
        load_rows(q_rows(io.dout, b, h, q0), qs.rows, dout, qt, dp);
        probs_and_dscores(qs, q, dout, kt, vt, j0, n, n8, p, ds);
        gemm_acc_at(n8, dp, qt, p, n8, dout, dp, dv, dp);  // dV += P^T.dO
        gemm_acc_at(n8, dp, qt, ds, n8, q, dp, dk, dp);    // dK += dS^T.Q (scaled below)
      }
    }
    const RowView rows = kv_rows(nullptr, b, hkv, j0);
    add_rows(dk, n, scale, io.dk, rows.first, rows.stride);
    add_rows(dv, n, 1.f, io.dv, rows.first, rows.stride);
  }

  // dQ of one query tile, with scores kept transposed (S^T = K.Q^T, keys x queries) so that K and V
  // tiles are read as contiguous rows and the elementwise step runs eight queries per SIMD op.
  void dq_task(int64_t b, int64_t h, int64_t q0) const {
    const int64_t tile = kKvTile * dp, scores = kKvTile * qt;
    auto [qt_buf, dot_buf, dq, k, v, st, dpt] =
        scratch_slices<7>({qt * dp, qt * dp, qt * dp, tile, tile, scores, scores});
    QSide qs;
    load_q_side(b, h, q0, qs);
    load_rows_transposed(q_rows(io.q, b, h, q0), qs.rows, qt_buf, dp, qt);
    load_rows_transposed(q_rows(io.dout, b, h, q0), qs.rows, dot_buf, dp, qt);
    std::fill(dq, dq + qt * dp, 0.f);
    const int64_t hkv = h / d.group();
    LaneRanges lr;
    for (int64_t j0 = qs.rr.union_lo; j0 < qs.rr.union_hi; j0 += kKvTile) {
      const int64_t n = std::min(kKvTile, qs.rr.union_hi - j0), n8 = round_up(n, kPad);
      load_rows(kv_rows(io.k, b, hkv, j0), n, k, n8, dp);
      load_rows(kv_rows(io.v, b, hkv, j0), n, v, n8, dp);
      lane_ranges(qs.rr, j0, n, lr);
      std::fill(st, st + n8 * qt, 0.f);
      gemm_acc(n8, qt, dp, k, dp, qt_buf, qt, st, qt);  // S^T = K.Q^T
      std::fill(dpt, dpt + n8 * qt, 0.f);
      gemm_acc(n8, qt, dp, v, dp, dot_buf, qt, dpt, qt);  // dP^T = V.dO^T
      dscores_transposed(st, dpt, n8, qt, lr, scale, qs.lse, qs.drow);
      gemm_acc_at(qt, dp, n8, st, qt, k, dp, dq, dp);  // dQ += dS.K (scaled below)
    }
    const RowView rows = q_rows(nullptr, b, h, q0);
    add_rows(dq, qs.rows, scale, io.dq, rows.first, rows.stride);
  }
};

}  // namespace

void attn_backward(const AttnDims& d, const AttnBlock& blk, const AttnBwdIO& io) {
  if (blk.lq <= 0 || blk.lkv <= 0) return;
  const int64_t qt = std::min(kQTile, round_up(blk.lq, 8)), n_qt = ceil_div(blk.lq, qt);
  const int64_t n_kt = ceil_div(blk.lkv, kKvTile);
  const BwdCtx ctx{d, blk, io, qt, round_up(d.head_dim, kPad), d.softmax_scale()};
  ThreadPool& pool = ThreadPool::shared();
  pool.parallel_for(d.batch * d.kv_heads * n_kt, [&](int64_t i) {
    ctx.dkdv_task(i / (d.kv_heads * n_kt), (i / n_kt) % d.kv_heads, (i % n_kt) * kKvTile);
  });
  pool.parallel_for(d.batch * d.heads * n_qt, [&](int64_t i) {
    ctx.dq_task(i / (d.heads * n_qt), (i / n_qt) % d.heads, (i % n_qt) * qt);
  });
}

}  // namespace xattn::cpu
