// A text block in transit travels as C chunks of consecutive rows, each stored whole ([B, n_c, H, D],
// [B, H, n_c], ...) in its own slot, so one chunk can be sent, computed and merged while the next is still
// on the wire. Slot c sits at the same place for every block: blocks differ in length by a row, and a
// chunk arriving for one block must not overlap a chunk of the previous one that is still being sent.
// Gathers and scatters convert between slots and a tensor's natural layout.
#pragma once
#include <cstddef>

#include "core/backend.h"
#include "core/shard.h"

namespace xattn {

// A per-row tensor in its natural layout [outer, n, row_bytes] (outer = B, or B*H for LSE).
struct RowTensor {
  size_t outer = 1, row_bytes = 0;
};

struct ChunkSlots {
  int chunks = 1;
  int64_t slot_rows = 0;  // rows of the longest chunk of the longest block
  ChunkSlots(int chunks, int64_t max_block_rows)
      : chunks(chunks), slot_rows((max_block_rows + chunks - 1) / chunks) {}
  size_t bytes(const RowTensor& t) const { return chunks * t.outer * slot_rows * t.row_bytes; }
  size_t offset(const RowTensor& t, int c) const { return c * t.outer * slot_rows * t.row_bytes; }
};

inline void gather_chunk(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                         const void* natural, void* chunked) {
  const Shard rows = shard_of(n, slots.chunks, c);
  be.copy_2d(static_cast<char*>(chunked) + slots.offset(t, c), rows.length * t.row_bytes,
             static_cast<const char*>(natural) + rows.begin * t.row_bytes, n * t.row_bytes, rows.length * t.row_bytes,
             t.outer);
}

inline void scatter_chunk(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                          const void* chunked, void* natural) {
  const Shard rows = shard_of(n, slots.chunks, c);
  be.copy_2d(static_cast<char*>(natural) + rows.begin * t.row_bytes, n * t.row_bytes,
             static_cast<const char*>(chunked) + slots.offset(t, c), rows.length * t.row_bytes,
             rows.length * t.row_bytes, t.outer);
}

}  // namespace xattn
