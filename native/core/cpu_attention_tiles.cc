#include "core/cpu_attention_tiles.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu_attention_simd.h"

namespace xattn::cpu {

using simd::vf8;

namespace {

// Eight elements starting at base[i] as float32.
XATTN_INLINE vf8 decode8(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return simd::load8(static_cast<const float*>(base) + i);
    case DType::BF16: return simd::bf16_to_f32x8(simd::load8_u16(static_cast<const uint16_t*>(base) + i));
    default: return simd::f16_to_f32x8(simd::load8_u16(static_cast<const uint16_t*>(base) + i));
  }
}

XATTN_INLINE void decode_impl(const void* base, DType t, int64_t first, int64_t n, float* out) {
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) simd::store8(out + c, decode8(base, t, first + c));
  if (c == n) return;
  alignas(32) unsigned char tail[32] = {};  // never read past the end of the source
  std::memcpy(tail, static_cast<const char*>(base) + (first + c) * dtype_size(t), (n - c) * dtype_size(t));
  float tmp[8];
  simd::store8(tmp, decode8(tail, t, 0));
  std::copy(tmp, tmp + (n - c), out + c);
}

// A 4-row x 8*NV-column block of C += A.B, accumulators in registers; A is [M x K] or, if AT, stored
// transposed as [K x M]. The k loop runs in increasing order for every element.
template <bool AT, int NV>
XATTN_INLINE void gemm_block(int64_t k, const float* a, int64_t lda, int64_t i0, const float* b, int64_t ldb,
                             int64_t j0, float* c, int64_t ldc) {
  vf8 acc[4][NV];
  for (int r = 0; r < 4; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = simd::load8(c + (i0 + r) * ldc + j0 + 8 * v);
  for (int64_t p = 0; p < k; ++p) {
    vf8 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = simd::load8(b + p * ldb + j0 + 8 * v);
    for (int r = 0; r < 4; ++r) {
      const vf8 av = simd::splat(AT ? a[p * lda + i0 + r] : a[(i0 + r) * lda + p]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int v = 0; v < NV; ++v) simd::store8(c + (i0 + r) * ldc + j0 + 8 * v, acc[r][v]);
}

template <bool AT>
XATTN_INLINE void gemm_impl(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                            int64_t ldb, float* c, int64_t ldc) {
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    int64_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) gemm_block<AT, 2>(k, a, lda, i0, b, ldb, j0, c, ldc);
    if (j0 < n) gemm_block<AT, 1>(k, a, lda, i0, b, ldb, j0, c, ldc);
  }
}

}  // namespace

XATTN_SIMD_CLONES void decode_row(const void* base, DType t, int64_t first, int64_t n, float* out) {
  decode_impl(base, t, first, n, out);
}

XATTN_SIMD_CLONES void load_rows(const RowView& v, int64_t rows, float* dst, int64_t rows_pad, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* out = dst + r * ld;
    decode_impl(v.base, v.dtype, v.first + r * v.stride, v.width, out);
    std::fill(out + v.width, out + ld, 0.f);
  }
  std::fill(dst + rows * ld, dst + rows_pad * ld, 0.f);
}

void prefetch_rows(const RowView& v, int64_t rows) {
  const auto* base = static_cast<const char*>(v.base);
  const int64_t elem = static_cast<int64_t>(dtype_size(v.dtype)), bytes = v.width * elem;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(base + (v.first + r * v.stride) * elem + off);
}

XATTN_SIMD_CLONES void load_rows_transposed(const RowView& v, int64_t rows, float* dst, int64_t width_pad,
                                            int64_t ld) {
  constexpr int64_t kChunk = 256;
  float tmp[kChunk];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < v.width; c0 += kChunk) {
      const int64_t n = std::min(kChunk, v.width - c0);
      decode_impl(v.base, v.dtype, v.first + r * v.stride + c0, n, tmp);
      for (int64_t c = 0; c < n; ++c) dst[(c0 + c) * ld + r] = tmp[c];
    }
  for (int64_t c = 0; c < v.width; ++c) std::fill(dst + c * ld + rows, dst + (c + 1) * ld, 0.f);
  std::fill(dst + v.width * ld, dst + width_pad * ld, 0.f);
}

XATTN_SIMD_CLONES void gemm_acc(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                int64_t ldb, float* c, int64_t ldc) {
  gemm_impl<false>(m, n, k, a, lda, b, ldb, c, ldc);
}

XATTN_SIMD_CLONES void gemm_acc_at(int64_t m, int64_t n, int64_t k, const float* at, int64_t lda, const float* b,
                                   int64_t ldb, float* c, int64_t ldc) {
  gemm_impl<true>(m, n, k, at, lda, b, ldb, c, ldc);
}

XATTN_SIMD_CLONES float exp_shifted(const float* in, float scale, float shift, float* out, int64_t n) {
  const vf8 vscale = simd::splat(scale), vshift = simd::splat(shift);
  vf8 sum = simd::splat(0.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const vf8 e = simd::exp8(simd::load8(in + i) * vscale - vshift);
    simd::store8(out + i, e);
    sum += e;
  }
  if (i < n) {  // tail padded with -inf, whose exp is 0
    float tmp[8];
    std::fill(tmp, tmp + 8, -std::numeric_limits<float>::infinity());
    std::copy(in + i, in + n, tmp);
    const vf8 e = simd::exp8(simd::load8(tmp) * vscale - vshift);
    simd::store8(tmp, e);
    std::copy(tmp, tmp + (n - i), out + i);
    sum += e;
  }
  return simd::hsum(sum);
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

void lane_ranges(const RowRanges& rr, int64_t j0, int64_t n, LaneRanges& out) {
  for (int64_t r = 0; r < kQTile; ++r) {
    out.lo[r] = static_cast<int32_t>(std::clamp<int64_t>(rr.lo[r] - j0, 0, n));
    out.hi[r] = static_cast<int32_t>(std::clamp<int64_t>(rr.hi[r] - j0, 0, n));
  }
}

float* thread_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace xattn::cpu
