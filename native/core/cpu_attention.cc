// Row-wise helpers of the CPU backend: LSE merge, the partials' float16 wire form, rowsum(dO * O) and dtype casts.
#include "core/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_attention_tiles.h"
#include "core/partial_wire.h"
#include "core/thread_pool.h"

namespace xattn::cpu {

namespace {
constexpr size_t kCastChunk = size_t{1} << 16;  // elements per cast task

// lse_merge's rule for one row: the merged LSE, and the weights of the accumulator and the part (a side that
// saw nothing gets weight 0 and is not read: -inf on both sides keeps O = 0, LSE = -inf). The weights come
// from the LSE difference only (1/(1+e), e/(1+e) with e = exp(min - max) <= 1): no overflow and no loss of
// precision when the LSEs are large; L = max + log1p(e).
struct MergeWeights {
  float acc, part, lse;
};

MergeWeights merge_weights(float la, float lb) {
  if (lb == -INFINITY) return {1.f, 0.f, la};  // the part saw nothing: acc unchanged (also when both are -inf)
  if (la == -INFINITY) return {0.f, 1.f, lb};  // acc saw nothing yet: the part as it is
  const bool a_max = la >= lb;
  const float mx = a_max ? la : lb, e = std::exp((a_max ? lb : la) - mx);
  const float w_max = 1.f / (1.f + e), w_min = e * w_max;
  return {a_max ? w_max : w_min, a_max ? w_min : w_max, mx + std::log1p(e)};
}

// out[c] = w.acc * oa[c] + w.part * ob(c), leaving out a side of weight 0.
template <typename Part, typename Out>
void merge_row(const MergeWeights& w, const float* oa, Part ob, int64_t D, Out out) {
  for (int64_t c = 0; c < D; ++c)
    out(c, w.part == 0.f ? oa[c] : w.acc == 0.f ? ob(c) : w.acc * oa[c] + w.part * ob(c));
}

}  // namespace

void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
               const float* part_lse) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * lq, [&](int64_t bi) {
    const int64_t b = bi / lq, i = bi % lq;
    for (int64_t h = 0; h < H; ++h) {
      float& la = acc_lse[(b * H + h) * lq + i];
      const MergeWeights w = merge_weights(la, part_lse[(b * H + h) * lq + i]);
      float* oa = acc_o + (bi * H + h) * D;
      const float* ob = part_o + (bi * H + h) * D;
      merge_row(w, oa, [&](int64_t c) { return ob[c]; }, D, [&](int64_t c, float v) { oa[c] = v; });
      la = w.lse;
    }
  });
}

void merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o, const float* acc_lse,
                 const HomePartial& part, void* out_o, float* out_lse) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * n, [&](int64_t bi) {
    const int64_t b = bi / n, i = bi % n, row = b * lq + r0 + i;  // this row in the natural layout
    for (int64_t h = 0; h < H; ++h) {
      const int64_t st = (b * H + h) * lq + r0 + i, pst = (b * H + h) * n + i, at = (row * H + h) * D, pat = (bi * H + h) * D;
      const MergeWeights w = merge_weights(acc_lse[st], part.lse[pst]);
      const auto ob = [&](int64_t c) {
        return part.wire ? f16_to_f32(part.wire[pat + c]) * part.scale[pst] : part.o[pat + c];
      };
      merge_row(w, acc_o + at, ob, D, [&](int64_t c, float v) { store_from_f32(out_o, d.dtype, static_cast<size_t>(at + c), v); });
      out_lse[st] = w.lse;
    }
  });
}

void partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * lq, [&](int64_t bi) {
    const int64_t b = bi / lq, i = bi % lq;
    for (int64_t h = 0; h < H; ++h) {
      const float* row = o + (bi * H + h) * D;
      float row_max = 0.f;  // inf where the row holds inf or NaN (they travel unscaled)
      for (int64_t c = 0; c < D; ++c) {
        const float a = std::fabs(row[c]);
        row_max = std::isfinite(a) ? std::max(row_max, a) : INFINITY;
      }
      const int e = partial_wire_exponent(row_max);
      scale[(b * H + h) * lq + i] = std::ldexp(1.f, e);
      for (int64_t c = 0; c < D; ++c) wire[(bi * H + h) * D + c] = f32_to_f16(std::ldexp(row[c], -e));
    }
  });
}

void partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * lq, [&](int64_t bi) {
    const int64_t b = bi / lq, i = bi % lq;
    for (int64_t h = 0; h < H; ++h) {
      const float s = scale[(b * H + h) * lq + i];
      for (int64_t c = 0; c < D; ++c) o[(bi * H + h) * D + c] = f16_to_f32(wire[(bi * H + h) * D + c]) * s;
    }
  });
}

void row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * lq, [&](int64_t bi) {
    const int64_t b = bi / lq, i = bi % lq;
    std::vector<float> x(static_cast<size_t>(2 * D));
    for (int64_t h = 0; h < H; ++h) {
      decode_row(dout, d.dtype, (bi * H + h) * D, D, x.data());
      decode_row(out, d.dtype, (bi * H + h) * D, D, x.data() + D);
      float sum = 0.f;
      for (int64_t c = 0; c < D; ++c) sum += x[c] * x[D + c];
      drow[(b * H + h) * lq + i] = sum;
    }
  });
}

void cast_from_f32(DType to, const float* src, void* dst, size_t n) {
  const int64_t chunks = static_cast<int64_t>((n + kCastChunk - 1) / kCastChunk);
  ThreadPool::shared().parallel_for(chunks, [&](int64_t c) {
    const size_t lo = static_cast<size_t>(c) * kCastChunk, hi = std::min(n, lo + kCastChunk);
    if (to == DType::F32) {
      std::copy(src + lo, src + hi, static_cast<float*>(dst) + lo);
    } else if (to == DType::BF16) {
      for (size_t i = lo; i < hi; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
    } else {
      for (size_t i = lo; i < hi; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
    }
  });
}

void cast_to_f32(DType from, const void* src, float* dst, size_t n) {
  const int64_t chunks = static_cast<int64_t>((n + kCastChunk - 1) / kCastChunk);
  ThreadPool::shared().parallel_for(chunks, [&](int64_t c) {
    const size_t lo = static_cast<size_t>(c) * kCastChunk, hi = std::min(n, lo + kCastChunk);
    decode_row(src, from, static_cast<int64_t>(lo), static_cast<int64_t>(hi - lo), dst + lo);
  });
}

}  // namespace xattn::cpu
