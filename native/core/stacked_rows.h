// Text blocks stacked row-wise, per batch (and per head for LSE-like tensors), each block's rows after
// those of the blocks before it: one backward launch then covers them all against the same visual rows,
// and writes their dK/dV once instead of writing them and reading them back (lv_plan.h: stack_own_rows,
// gather_blocks).
#pragma once
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/backend.h"
#include "core/row_chunks.h"

namespace xattn {

struct StackedBlocks {
  std::vector<int64_t> rows;  // of each block, in stacking order
  int64_t total() const { return std::accumulate(rows.begin(), rows.end(), int64_t{0}); }
  int64_t begin(size_t k) const { return std::accumulate(rows.begin(), rows.begin() + k, int64_t{0}); }
};

// Copies block k's tensor t (natural layout, s.rows[k] rows) into its place in `stacked` ([outer, total, ...]).
inline void stack_blocks(Backend& be, const RowTensor& t, const StackedBlocks& s, const std::vector<const void*>& blocks,
                         void* stacked) {
  const size_t pitch = s.total() * t.row_bytes;
  for (size_t k = 0; k < s.rows.size(); ++k) {
    const size_t width = s.rows[k] * t.row_bytes;
    if (width) be.copy_2d(static_cast<char*>(stacked) + s.begin(k) * t.row_bytes, pitch, blocks[k], width, width, t.outer);
  }
}

// Block k of a stacked tensor into `dst`, in its natural layout.
inline void unstack_block(Backend& be, const RowTensor& t, const StackedBlocks& s, size_t k, const void* stacked, void* dst) {
  const size_t width = s.rows[k] * t.row_bytes;
  if (width)
    be.copy_2d(dst, width, static_cast<const char*>(stacked) + s.begin(k) * t.row_bytes, s.total() * t.row_bytes, width, t.outer);
}

// dst += block k of a stacked float32 tensor. Where the block is not contiguous (outer > 1) it is gathered
// into `scratch` (that block's size) first.
inline void add_block(Backend& be, const RowTensor& t, const StackedBlocks& s, size_t k, const float* stacked, float* dst,
                      float* scratch) {
  const size_t width = s.rows[k] * t.row_bytes;
  if (width == 0) return;
  const auto* part = reinterpret_cast<const char*>(stacked) + s.begin(k) * t.row_bytes;
  if (t.outer > 1) {
    unstack_block(be, t, s, k, stacked, scratch);
    part = reinterpret_cast<const char*>(scratch);
  }
  be.add_f32(dst, reinterpret_cast<const float*>(part), t.outer * width / sizeof(float));
}

// Two blocks: the ring's last visiting block over the owner's rows.
struct StackedRows {
  int64_t first = 0, second = 0;  // rows of each block
  int64_t rows() const { return first + second; }
  StackedBlocks blocks() const { return {{first, second}}; }
};

inline void stack_rows(Backend& be, const RowTensor& t, const StackedRows& s, const void* a, const void* b, void* stacked) {
  stack_blocks(be, t, s.blocks(), {a, b}, stacked);
}

// dst += block `which` (0: the first, 1: the second) of a stacked float32 tensor.
inline void add_stacked(Backend& be, const RowTensor& t, const StackedRows& s, int which, const float* stacked, float* dst,
                        float* scratch) {
  add_block(be, t, s.blocks(), static_cast<size_t>(which), stacked, dst, scratch);
}

}  // namespace xattn
