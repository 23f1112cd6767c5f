// Building blocks shared by the CPU attention kernels: tile geometry, conversion of strided head rows
// into padded float32 tiles, a small register-blocked GEMM and per-row mask ranges.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "core/attn.h"

namespace xattn::cpu {

constexpr int64_t kQTile = 64;   // query rows per task (a multiple of 8: queries are SIMD lanes)
constexpr int64_t kKvTile = 64;  // key/value rows per inner step
constexpr int64_t kPad = 8;      // GEMM column block: padded widths are multiples of this

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Rows of one head inside a BSHD tensor: element (r, c) lives at index first + r * stride + c.
struct RowView {
  const void* base;
  DType dtype;
  int64_t first;
  int64_t stride;
  int64_t width;
};

// out[c] = base[first + c] as float32 for c < n (reads exactly n elements).
void decode_row(const void* base, DType t, int64_t first, int64_t n, float* out);
// dst[r * ld + c] = row r, column c as float32 for r < rows; zero for c in [width, ld) and r in [rows, rows_pad).
void load_rows(const RowView& v, int64_t rows, float* dst, int64_t rows_pad, int64_t ld);
// Hints the cache to start fetching `rows` rows of v (the next tile) while the current one is computed.
void prefetch_rows(const RowView& v, int64_t rows);
// dst[c * ld + r] = row r, column c (transposed); zero for r in [rows, ld) and c in [width, width_pad).
void load_rows_transposed(const RowView& v, int64_t rows, float* dst, int64_t width_pad, int64_t ld);

// C[M x N] += A[M x K] * B[K x N] (row-major, leading dims lda/ldb/ldc); M % 4 == 0, N % kPad == 0.
// Each C element sums over k in increasing order, so results do not depend on blocking or threads.
void gemm_acc(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc);

// Same with A stored transposed: C[M x N] += At^T.B where At is [K x M] (leading dim lda).
void gemm_acc_at(int64_t m, int64_t n, int64_t k, const float* at, int64_t lda, const float* b, int64_t ldb,
                 float* c, int64_t ldc);

// out[i] = exp(in[i] * scale - shift) for i < n (in may equal out); returns their sum (fixed order).
float exp_shifted(const float* in, float scale, float shift, float* out, int64_t n);

// Local visible KV range [lo, hi) of each query row of a tile (mask clipped to this block), plus the
// union [union_lo, union_hi) over rows that see anything (empty: union_lo == union_hi).
struct RowRanges {
  int64_t lo[kQTile];
  int64_t hi[kQTile];
  int64_t union_lo;
  int64_t union_hi;
};
void row_ranges(const AttnBlock& blk, int64_t batch, int64_t q0, int64_t rows, RowRanges& out);

// The same ranges relative to a kv tile [j0, j0 + n), clipped to [0, n], as 32-bit lanes for code that
// works on transposed scores S^T [keys x queries] eight queries at a time: key j of the tile is visible to
// query r iff lo[r] <= j < hi[r].
struct LaneRanges {
  int32_t lo[kQTile];
  int32_t hi[kQTile];
};
void lane_ranges(const RowRanges& rr, int64_t j0, int64_t n, LaneRanges& out);

// Per-thread scratch of at least n floats, reused between calls on the same thread.
float* thread_scratch(size_t n);

// The thread's scratch cut into consecutive slices of the given float counts:
//   auto [a, b] = scratch_slices<2>({n_a, n_b});
template <size_t N>
std::array<float*, N> scratch_slices(const int64_t (&sizes)[N]) {
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  std::array<float*, N> out;
  float* p = thread_scratch(static_cast<size_t>(total));
  for (size_t i = 0; i < N; ++i) {
    out[i] = p;
    p += sizes[i];
  }
  return out;
}

}  // namespace xattn::cpu
