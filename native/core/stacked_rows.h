// Two text blocks stacked row-wise, per batch (and per head for LSE-like tensors), the first block's rows
// first: one backward launch then covers both against the same visual rows, and writes their dK/dV once
// instead of writing them and reading them back (lv_plan.h: stack_own_rows).
#pragma once
#include <cstdint>

#include "core/backend.h"
#include "core/row_chunks.h"

namespace xattn {

struct StackedRows {
  int64_t first = 0, second = 0;  // rows of each block
  int64_t rows() const { return first + second; }
};

// Copies block a (s.first rows) and block b (s.second rows) of tensor t into `stacked` ([outer, rows, ...]).
inline void stack_rows(Backend& be, const RowTensor& t, const StackedRows& s, const void* a, const void* b,
                       void* stacked) {
  const size_t pitch = s.rows() * t.row_bytes, wa = s.first * t.row_bytes, wb = s.second * t.row_bytes;
  auto* dst = static_cast<char*>(stacked);
  if (wa) be.copy_2d(dst, pitch, a, wa, wa, t.outer);
  if (wb) be.copy_2d(dst + wa, pitch, b, wb, wb, t.outer);
}

// dst += block `which` (0: the first, 1: the second) of a stacked float32 tensor. Where the block is not
// contiguous (outer > 1) it is gathered into `scratch` (that block's size) first.
inline void add_stacked(Backend& be, const RowTensor& t, const StackedRows& s, int which, const float* stacked,
                        float* dst, float* scratch) {
  const int64_t n = which == 0 ? s.first : s.second;
  if (n == 0) return;
  const auto* part = reinterpret_cast<const char*>(stacked) + (which == 0 ? 0 : s.first * t.row_bytes);
  const size_t width = n * t.row_bytes;
  if (t.outer > 1) {
    be.copy_2d(scratch, width, part, s.rows() * t.row_bytes, width, t.outer);
    part = reinterpret_cast<const char*>(scratch);
  }
  be.add_f32(dst, reinterpret_cast<const float*>(part), t.outer * width / sizeof(float));
}

}  // namespace xattn
