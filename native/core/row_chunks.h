// A text block in transit travels as C chunks of consecutive rows, stored one after another and each
// whole ([B, n_c, H, D], [B, H, n_c], ...), so one chunk can be sent, computed and merged while the next
// is still on the wire. Gathers and scatters convert between that and a tensor's natural layout.
#pragma once
#include <cstddef>

#include "core/backend.h"
#include "core/shard.h"

namespace xattn {

// A per-row tensor in its natural layout [outer, n, row_bytes] (outer = B, or B*H for LSE).
struct RowTensor {
  size_t outer = 1, row_bytes = 0;
  size_t chunk_offset(const Shard& c) const { return outer * c.begin * row_bytes; }  // in chunked storage
};

inline void gather_chunk(Backend& be, const RowTensor& t, int64_t n, const Shard& c, const void* natural,
                         void* chunked) {
  be.copy_2d(static_cast<char*>(chunked) + t.chunk_offset(c), c.length * t.row_bytes,
             static_cast<const char*>(natural) + c.begin * t.row_bytes, n * t.row_bytes, c.length * t.row_bytes, t.outer);
}

inline void scatter_chunk(Backend& be, const RowTensor& t, int64_t n, const Shard& c, const void* chunked,
                          void* natural) {
  be.copy_2d(static_cast<char*>(natural) + c.begin * t.row_bytes, n * t.row_bytes,
             static_cast<const char*>(chunked) + t.chunk_offset(c), c.length * t.row_bytes, c.length * t.row_bytes, t.outer);
}

}  // namespace xattn
