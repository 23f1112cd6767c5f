#include "core/cpu_attention_tiles.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace xattn::cpu {

namespace {

// The dtype switch happens once per tile; the per-element loops below are specialised per dtype.
template <class Fn>
void with_loader(DType t, const void* base, Fn&& fn) {
  switch (t) {
    case DType::F32: {
      const float* p = static_cast<const float*>(base);
      fn([p](int64_t i) { return p[i]; });
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(base);
      fn([p](int64_t i) { return bf16_to_f32(p[i]); });
      break;
    }
    default: {
      const uint16_t* p = static_cast<const uint16_t*>(base);
      fn([p](int64_t i) { return f16_to_f32(p[i]); });
      break;
    }
  }
}

}  // namespace

void load_rows(const RowView& v, int64_t rows, float* dst, int64_t rows_pad, int64_t ld) {
  with_loader(v.dtype, v.base, [&](auto load) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = v.first + r * v.stride;
      float* out = dst + r * ld;
      for (int64_t c = 0; c < v.width; ++c) out[c] = load(src + c);
      std::fill(out + v.width, out + ld, 0.f);
    }
  });
  std::fill(dst + rows * ld, dst + rows_pad * ld, 0.f);
}

void load_rows_transposed(const RowView& v, int64_t rows, float* dst, int64_t width_pad, int64_t ld) {
  with_loader(v.dtype, v.base, [&](auto load) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = v.first + r * v.stride;
      for (int64_t c = 0; c < v.width; ++c) dst[c * ld + r] = load(src + c);
    }
  });
  for (int64_t c = 0; c < v.width; ++c) std::fill(dst + c * ld + rows, dst + (c + 1) * ld, 0.f);
  std::fill(dst + v.width * ld, dst + width_pad * ld, 0.f);
}

// 4 x kPad register block: the fixed-size inner loops unroll and vectorise at -O3 on baseline x86-64.
void gemm_acc(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc) {
  constexpr int R = 4, C = static_cast<int>(kPad);
  for (int64_t i0 = 0; i0 < m; i0 += R) {
    const float* a0 = a + i0 * lda;
    for (int64_t j0 = 0; j0 < n; j0 += C) {
      float acc[R][C];
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < C; ++j) acc[r][j] = c[(i0 + r) * ldc + j0 + j];
      for (int64_t p = 0; p < k; ++p) {
        const float* brow = b + p * ldb + j0;
        for (int r = 0; r < R; ++r) {
          const float av = a0[r * lda + p];
          for (int j = 0; j < C; ++j) acc[r][j] += av * brow[j];
        }
      }
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < C; ++j) c[(i0 + r) * ldc + j0 + j] = acc[r][j];
    }
  }
}

void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

float exp_shifted(const float* in, float scale, float shift, float* out, int64_t n) {
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(in[i] * scale - shift);
    sum += out[i];
  }
  return sum;
}

void row_ranges(const AttnBlock& blk, int64_t batch, int64_t q0, int64_t rows, RowRanges& out) {
  out.union_lo = blk.lkv;
  out.union_hi = 0;
  for (int64_t r = 0; r < kQTile; ++r) {
    int64_t lo = 0, hi = r < rows ? blk.lkv : 0;
    if (r < rows && blk.mask) {
      const int32_t* m = blk.mask + (batch * blk.lq + q0 + r) * 2;
      lo = std::clamp<int64_t>(m[0] - blk.kv_offset, 0, blk.lkv);
      hi = std::clamp<int64_t>(m[1] - blk.kv_offset, 0, blk.lkv);
    }
    if (hi <= lo) lo = hi = 0;
    out.lo[r] = lo;
    out.hi[r] = hi;
    if (hi > lo) {
      out.union_lo = std::min(out.union_lo, lo);
      out.union_hi = std::max(out.union_hi, hi);
    }
  }
  if (out.union_hi <= out.union_lo) out.union_lo = out.union_hi = 0;
}

float* thread_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace xattn::cpu
