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
}  // namespace

void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
               const float* part_lse) {
  const int64_t H = d.heads, D = d.head_dim;
  ThreadPool::shared().parallel_for(d.batch * lq, [&](int64_t bi) {
    const int64_t b = bi / lq, i = bi % lq;
    for (int64_t h = 0; h < H; ++h) {
      float& la = acc_lse[(b * H + h) * lq + i];
      const float lb = part_lse[(b * H + h) * lq + i];
      float* oa = acc_o + (bi * H + h) * D;
      const float* ob = part_o + (bi * H + h) * D;
      if (lb == -INFINITY) continue;  // the part saw nothing: acc unchanged (also when both are -inf)
      if (la == -INFINITY) {          // acc saw nothing yet: take the part as it is
        la = lb;
        std::copy(ob, ob + D, oa);
        continue;
      }
      // Weights from the LSE difference only (1/(1+e), e/(1+e) with e = exp(min - max) <= 1): no overflow
      // and no loss of precision when the LSEs are large; L = max + log1p(e).
      const bool a_max = la >= lb;
      const float mx = a_max ? la : lb, e = std::exp((a_max ? lb : la) - mx);
      const float w_max = 1.f / (1.f + e), w_min = e * w_max;
      const float wa = a_max ? w_max : w_min, wb = a_max ? w_min : w_max;
      for (int64_t c = 0; c < D; ++c) oa[c] = wa * oa[c] + wb * ob[c];
      la = mx + std::log1p(e);
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
