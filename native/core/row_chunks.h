// A text block in transit travels as C chunks of consecutive rows, each stored whole ([B, n_c, H, D],
// [B, H, n_c], ...) in its own slot, so one chunk can be sent, computed and merged while the next is still
// on the wire. Slot c sits at the same place for every block: blocks differ in length by a row, and a
// chunk arriving for one block must not overlap a chunk of the previous one that is still being sent.
// Gathers and scatters convert between slots and a tensor's natural layout.
#pragma once
#include <cstddef>
#include <vector>

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

// Chunk c of tensor t: from its natural layout (n rows) into `chunk` (that chunk's place in a slot), and back.
inline void gather_chunk_to(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                            const void* natural, void* chunk) {
  const Shard rows = shard_of(n, slots.chunks, c);
  be.copy_2d(chunk, rows.length * t.row_bytes, static_cast<const char*>(natural) + rows.begin * t.row_bytes,
             n * t.row_bytes, rows.length * t.row_bytes, t.outer);
}

inline void scatter_chunk_from(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                               const void* chunk, void* natural) {
  const Shard rows = shard_of(n, slots.chunks, c);
  be.copy_2d(static_cast<char*>(natural) + rows.begin * t.row_bytes, n * t.row_bytes, chunk, rows.length * t.row_bytes,
             rows.length * t.row_bytes, t.outer);
}

inline void gather_chunk(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                         const void* natural, void* chunked) {
  gather_chunk_to(be, t, slots, n, c, natural, static_cast<char*>(chunked) + slots.offset(t, c));
}

inline void scatter_chunk(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, int c,
                          const void* chunked, void* natural) {
  scatter_chunk_from(be, t, slots, n, c, static_cast<const char*>(chunked) + slots.offset(t, c), natural);
}

// Row tensors that travel together: chunk c of every part lies in one span, the parts one after the other
// for the chunk's rows, so a hop is one message of exactly their bytes. Each message has a fixed cost
// that its bytes do not explain (2x H200, one exchange per message, queued: over the copy engines 2 MiB took
// 28 us, 2 MiB + 16 KiB as two messages 38 and with another 16 KiB 63; through host memory 103, 114 and 122).
struct SlotBundle {
  ChunkSlots slots;
  std::vector<RowTensor> parts;

  // Bytes of part k for `rows` rows.
  size_t part_bytes(size_t k, int64_t rows) const { return parts[k].outer * rows * parts[k].row_bytes; }
  // Bytes of chunk c's message when it holds `rows` rows.
  size_t message_bytes(int64_t rows) const {
    size_t n = 0;
    for (size_t k = 0; k < parts.size(); ++k) n += part_bytes(k, rows);
    return n;
  }
  size_t bytes() const { return slots.chunks * message_bytes(slots.slot_rows); }
  // Byte offset of part k of chunk c, which holds `rows` rows (every side of a hop knows them).
  size_t offset(size_t k, int c, int64_t rows) const {
    size_t at = c * message_bytes(slots.slot_rows);
    for (size_t j = 0; j < k; ++j) at += part_bytes(j, rows);
    return at;
  }
};

}  // namespace xattn
