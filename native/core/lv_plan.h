// How LV-XAttn pipelines one call on one rank: pure decisions from the problem's sizes, the ranks'
// probed link and the backend's nominal attention rate. Every rank derives the same chunk count from
// global sizes (the ranks' transfers must pair up); the owner's split is each rank's own business.
#pragma once
#include "core/own_block.h"
#include "core/schedule.h"

namespace xattn {

enum class LvPass { Forward, Backward };

struct LvPlan {
  int chunks = 1;  // row chunks every travelling block is sent in
  OwnSplit split;  // how this rank computes its own block
  PartialPrecision partials = PartialPrecision::Float32;  // how the pass's partial results travel (never Auto)
  // Backward: the own block's second piece runs in one launch with the last visiting block, their rows
  // stacked (stacked_rows.h), so dK/dV of those visual rows are written once instead of written and read back.
  bool stack_last = false;
  // Every visiting block goes straight to every rank at once, and each rank computes all the blocks it
  // receives in one launch (schedule_lv_gathered.cc) instead of one launch a ring step: gather_blocks.
  bool gathered = false;
  // Backward, around the ring: the visiting inputs travel as one message a chunk, since no first piece hides
  // their hop (each message costs more than copying the own block's inputs into one). Decided from the
  // largest shards, like the stacking: every rank must send what the others expect, while each sizes its
  // own first piece (split) from its own rows.
  bool inputs_together = false;
};

// What the plan needs to know of the backend: its nominal attention rate, and the visual rows its backward
// kernel covers in one wave (Backend::bwd_kv_rows_per_wave; 0 = waves unknown).
struct PlanDevice {
  double flops_per_second = 0;
  double bwd_kv_rows_per_wave = 0;
};

// query_kept: the backward's Q blocks stay where the forward left them (kept_queries.h), so Q does not travel.
LvPlan plan_lv(const DistProblem& pb, int world, int rank, bool masked, LvPass pass, const PlanDevice& dev,
               bool query_kept = false);

// What PartialPrecision::Auto becomes for one pass: float16 where the attention is 16-bit and the pass's
// trip with float32 partials (trip_seconds) takes at least 0.6 of its block's compute, else float32
// (lv_plan.cc says why). An explicit precision stays as asked.
PartialPrecision choose_partials(PartialPrecision asked, DType dtype, double trip_seconds, double compute_seconds);

// Two chunks where a block's round trip (trip_bytes at link_gbps) takes more than 0.7 of its compute
// (block_flops at flops_per_second) and each chunk keeps >= 256 rows, else one (lv_plan.cc says why).
int row_chunks(int64_t max_block_rows, double trip_bytes, double link_gbps, double block_flops,
               double flops_per_second, LvPass pass);

// Whether the backward stacks the own rows onto the last visiting block (LvPlan::stack_last): where the
// float32 dK/dV read-modify-write that saves, less the copies stacking costs, outweighs the last hop it
// leaves exposed (last_hop_bytes at 0.6 of the link). Only with one row chunk (lv_plan.cc says why).
bool stack_own_rows(const AttnDims& d, int64_t text_rows, int64_t own_rows, int64_t kv_rows, double last_hop_bytes,
                    double link_gbps);

// Whether a pass gathers its blocks (LvPlan::gathered), from global sizes only: every rank must decide alike
// (their transfers pair up). Where P >= 3 and the blocks travel in one chunk (lv_plan.cc says why); `forced`
// 0 / 1 turns it off, or on wherever it can (at P = 2 too); -1 decides.
bool gather_blocks(int world, int chunks, int forced);

// The owner's first piece when its rest is stacked: just long enough to hide the first hop (at 0.6 of the link,
// against the own block's compute), on a whole wave where wave_rows > 0; none where that is under half a wave
// or the own block has under 256 rows (lv_plan.cc says why). $XATTN_LV_FIRST_SHARE forces its share (0: none).
OwnSplit stacked_split(int64_t batch, int64_t own_rows, int64_t kv_rows, double first_hop_bytes, double link_gbps,
                       double own_seconds, double wave_rows);

// The owner's block whole where both its hops take under 0.1 ms at 0.6 of the link's speed, else in two pieces
// at the first hop's share of the bytes, on a whole wave where wave_rows > 0 (lv_plan.cc says why).
OwnSplit own_split(int64_t batch, int64_t kv_rows, double first_hop_bytes, double last_hop_bytes, double link_gbps,
                   double wave_rows, LvPass pass);

}  // namespace xattn
