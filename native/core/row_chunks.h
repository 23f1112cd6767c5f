// A text block in transit travels as C chunks of consecutive rows, each stored whole ([B, n_c, H, D],
// [B, H, n_c], ...) in its own slot, so one chunk can be sent, computed and merged while the next is still
// on the wire. Slot c sits at the same place for every block: blocks differ in length by a row, and a
// chunk arriving for one block must not overlap a chunk of the previous one that is still being sent.
// Gathers and scatters convert between slots and a tensor's natural layout.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdlib>

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

// How many chunks a block travels in. Two where its round trip (trip_bytes at the ranks' probed link)
// takes more than 0.6 of its compute (block_flops at the backend's rate) and every chunk keeps at least
// 256 rows: then the link sets the pace, and chunking lets one chunk's compute and trip home overlap the
// next chunk's transfer. The 0.6: beside the kernels a transfer runs slower than the probe saw (NCCL's
// copies share SMs and memory with them); on 2x H200 over host memory, chunks paid off at trip/compute
// 0.8 (forward 1024x64K, backward 4096x32K) and cost at 0.4 (backward 1024x64K). Otherwise one: the
// owner's split block hides the hops, and every extra call re-reads the K/V shard (and in the backward
// read-modify-writes its float32 dK/dV). Every rank derives it from global sizes and the agreed
// bandwidth. $XATTN_LV_CHUNKS overrides it (forward and backward), for experiments.
inline int row_chunks(int64_t max_block_rows, double trip_bytes, double link_gbps, double block_flops,
                      double flops_per_second) {
  static const char* forced = std::getenv("XATTN_LV_CHUNKS");
  if (forced && *forced) return std::max(1, std::atoi(forced));
  constexpr int64_t kMinChunkRows = 256;
  constexpr double kLinkBoundShare = 0.6;
  if (max_block_rows < 2 * kMinChunkRows || link_gbps <= 0 || flops_per_second <= 0) return 1;
  const double trip_seconds = trip_bytes / (link_gbps * 1e9), compute_seconds = block_flops / flops_per_second;
  return trip_seconds > kLinkBoundShare * compute_seconds ? 2 : 1;
}

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
