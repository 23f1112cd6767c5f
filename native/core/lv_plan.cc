#include "core/lv_plan.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/schedule_internal.h"
#include "core/shard.h"

namespace xattn {

namespace {

// Beside the kernels a transfer runs slower than the probe saw (NCCL's copies share SMs and memory with
// them): the owner's split counts on this share of the probed bandwidth.
constexpr double kLinkBoundShare = 0.6;

// Seconds `bytes` take at that share of a link of `link_gbps` (> 0).
double loaded_seconds(double bytes, double link_gbps) { return bytes / (kLinkBoundShare * link_gbps * 1e9); }

// FLOPs of one text block of `rows` rows against a K/V shard: the forward's two GEMMs, the backward's five.
double block_flops(const AttnDims& d, int64_t rows, int64_t kv_rows, LvPass pass) {
  return (pass == LvPass::Backward ? 10.0 : 4.0) * d.batch * d.heads * d.head_dim * static_cast<double>(rows) * kv_rows;
}

// An experiment's override from $name for one pass: "V" for both passes, or "F/B" for each (either may be
// left empty: the plan decides). Null where none is set for this pass.
const char* forced_for(const char* name, LvPass pass) {
  const char* v = std::getenv(name);
  if (!v || !*v) return nullptr;
  const char* slash = std::strchr(v, '/');
  const char* part = slash && pass == LvPass::Backward ? slash + 1 : v;
  return *part && *part != '/' ? part : nullptr;
}

}  // namespace

// Chunking pays where the link sets the pace: one chunk's compute and trip home then overlap the next
// chunk's transfer. Counted at the probe's speed, the trip must exceed 0.7 of the compute: on 2x H200 over
// host memory, chunks paid off at trip/compute 0.8 (forward 1024x64K) and 0.87 (backward 4096x32K), and
// cost at 0.66 (backward 4096x32K with float16 partials: 7.66 against 7.46 ms) and 0.4 (backward
// 1024x64K). Elsewhere the owner's split block hides the hops, and every extra call re-reads the K/V shard
// (and in the backward read-modify-writes its float32 dK/dV). $XATTN_LV_CHUNKS overrides it, for experiments
// (forced_for: N, or F/B per pass).
int row_chunks(int64_t max_block_rows, double trip_bytes, double link_gbps, double block_flops,
               double flops_per_second, LvPass pass) {
  if (const char* forced = forced_for("XATTN_LV_CHUNKS", pass)) return std::max(1, std::atoi(forced));
  constexpr int64_t kMinChunkRows = 256;
  if (max_block_rows < 2 * kMinChunkRows || link_gbps <= 0 || flops_per_second <= 0) return 1;
  const double trip_seconds = trip_bytes / (link_gbps * 1e9), compute_seconds = block_flops / flops_per_second;
  constexpr double kChunkWorthRatio = 0.7;
  return trip_seconds > kChunkWorthRatio * compute_seconds ? 2 : 1;
}

// Float16 partials halve each pass's heaviest transfer but add a pack and an unpack kernel per hop; they
// pay where the link sets much of the pace. On 2x H200 (LV-XAttn steps, float32 against float16 partials,
// same runs; trip over compute at the nominal rate in brackets): over NVLink (a few percent) float16 lost
// 1-3 %; over host memory the 1024x64K forward (0.8) was even to slightly ahead (5.05-5.22 against
// 4.99-5.19 ms over 8 runs), the 4096x32K backward with kept Q (0.64) ahead by 0.02-0.25 ms (float32 dQ
// waits ~0.15 ms to come home) and the 4096x32K forward (1.6) by ~0.5 ms (10.0 against 9.45); over sockets
// (2.4-19) steps gained 8-30 % (4096x32K: 53-63 against 39-45 ms). Float32 attention keeps float32
// partials: float16's 2^-11 would be coarser than its output's own rounding.
PartialPrecision choose_partials(PartialPrecision asked, DType dtype, double trip_seconds, double compute_seconds) {
  if (asked != PartialPrecision::Auto) return asked;
  constexpr double kFloat16WorthRatio = 0.6;
  const bool link_paced = compute_seconds > 0 && trip_seconds >= kFloat16WorthRatio * compute_seconds;
  return dtype != DType::F32 && link_paced ? PartialPrecision::Float16 : PartialPrecision::Float32;
}

// Two pieces hide the first and the last hop; the first piece's share is what the first hop needs to
// hide, relative to the last. But each piece is a shorter kernel beside an NCCL kernel that holds SMs
// (H200 over NVLink: +0.1-0.17 ms a forward at the bench shapes, against hops of 0.02-0.06 ms), so where
// both hops take under 0.1 ms (at kLinkBoundShare of the probed bandwidth) the block runs whole, first, and
// the short last hop is left exposed. At the probe's full speed, 256x128K over host memory with float16
// partials (2.1 MB of hops, 87 us) ran whole and waited 0.21 ms for its result to come home.
// $XATTN_LV_FIRST_SHARE (0..1; forced_for: one share, or F/B per pass) forces a split at that share, for
// experiments and tests.
OwnSplit own_split(int64_t batch, int64_t kv_rows, double first_hop_bytes, double last_hop_bytes, double link_gbps,
                   double wave_rows, LvPass pass) {
  if (const char* forced = forced_for("XATTN_LV_FIRST_SHARE", pass))
    return split_own_block(batch, kv_rows, std::atof(forced), wave_rows);
  constexpr double kSplitWorthSeconds = 100e-6;
  const double total = first_hop_bytes + last_hop_bytes;
  if (link_gbps > 0 && loaded_seconds(total, link_gbps) < kSplitWorthSeconds)
    return whole_block(batch, kv_rows);
  return split_own_block(batch, kv_rows, total > 0 ? first_hop_bytes / total : 0.5, wave_rows);
}

// One backward launch over the own and the visiting rows writes the float32 dK/dV of its visual rows once;
// run apart, the second launch reads them back and writes them again, and loads K/V again. On one H200
// (queued, H32/Hkv8 d128), two launches of 128 text rows against 64K visual rows took 0.82 + 0.95 ms and one
// of 256 rows 1.45; 512 + 512 rows against 32K 1.37 + 1.46 against 2.63; 2048 + 2048 against 16K 2.59 +
// 2.62 against 5.15: about a second per 1.5 TB of float32 dK/dV. From that go the stacking copies (Q and dO
// in, dQ out, each read and written). The stacked launch finishes the visiting block's dQ last, so its trip
// home no longer hides behind the own block's second piece: stacking must save more than that trip takes.
// Chunked blocks (slow links) keep the pieces. $XATTN_LV_STACK=0/1 forces it off/on.
bool stack_own_rows(const AttnDims& d, int64_t text_rows, int64_t own_rows, int64_t kv_rows, double last_hop_bytes,
                    double link_gbps) {
  static const char* forced = std::getenv("XATTN_LV_STACK");
  if (forced && *forced) return std::atoi(forced) != 0;
  if (link_gbps <= 0 || own_rows == 0) return false;  // the last hop's length unknown: keep it hidden
  constexpr double kSavedBytesPerSecond = 1.5e12;
  const sched::RowBytes rb(d);
  const double rows = static_cast<double>(text_rows + own_rows);
  const double dkv_bytes = 2.0 * static_cast<double>(kv_rows) * rb.kv32;
  const double copy_bytes = 2.0 * (2.0 * rows * rb.q + rows * rb.o32);
  const double saved = (dkv_bytes - copy_bytes) / kSavedBytesPerSecond;
  return saved > loaded_seconds(last_hop_bytes, link_gbps);
}

// The first piece only has to cover the first hop; the second runs stacked. Under half a wave (or half a batch,
// or half a 128-row tile where waves are unknown) it is left out: the stacked launch then waits for the hop. It
// takes at most half the block: a first hop longer than that is mostly exposed anyway (stacking pays on fast
// links), and the stacked launch keeps rows to stack. Under 256 own rows it is left out too: a launch over
// the visual rows costs a fixed time per K/V tile (its loads, its dK/dV written, then read back by the
// visiting rows' launch) that so few rows do not outweigh, while in the stacked launch they ride almost free.
// Over host memory: on 4x H200 (P = 4, 256x524288: 64 rows a rank) the planned 9-wave piece took 0.30 ms and
// the step ran 0.31 ms longer than with none (4.54 against 4.23 ms, two rounds each); at P = 2 (256x131072:
// 128 rows a rank) steps ran 2.17-2.19 ms with the planned piece against 2.14-2.15 without.
OwnSplit stacked_split(int64_t batch, int64_t own_rows, int64_t kv_rows, double first_hop_bytes, double link_gbps,
                       double own_seconds, double wave_rows) {
  if (const char* forced = forced_for("XATTN_LV_FIRST_SHARE", LvPass::Backward)) {
    const double share = std::atof(forced);  // 0 leaves the first piece out
    return share > 0 ? split_own_block(batch, kv_rows, share, wave_rows) : all_in_second(batch, kv_rows);
  }
  constexpr int64_t kMinFirstPieceRows = 256;
  if (own_rows < kMinFirstPieceRows) return all_in_second(batch, kv_rows);
  const double hop = link_gbps > 0 ? loaded_seconds(first_hop_bytes, link_gbps) : 0;
  const double share = own_seconds > 0 ? std::min(0.5, hop / own_seconds) : 0;
  const double units = batch >= 2 ? static_cast<double>(batch)
                       : wave_rows > 0 ? static_cast<double>(kv_rows) / wave_rows
                                       : static_cast<double>(kv_rows) / (kv_rows >= 1024 ? 128 : 1);
  if (share * units < 0.5) return all_in_second(batch, kv_rows);
  return split_own_block(batch, kv_rows, share, wave_rows);
}

// With P >= 3 ranks the ring runs P launches a pass over the same K/V shard, each for one block of text rows:
// short blocks fill the kernels' row tiles poorly, and every backward launch reads and writes the shard's
// float32 dK/dV again (about a second per 1.5 TB, stack_own_rows). Gathered, each rank sends its block to
// every other rank at once, runs the own block (or its first piece) while they arrive, then one launch over
// all the blocks it received (stacked), and sends each block's result straight home: two launches a pass,
// the same bytes on the wire. What it gives up is the ring's cover for the trip home, exposed either way
// where one launch does the visiting work. Chunked blocks (slow links) stay on the ring. DistProblem::gather
// (or $XATTN_LV_GATHER) 0 / 1 forces it off / on (on also at P = 2: the same bytes go to the same ranks as
// around the ring).
bool gather_blocks(int world, int chunks, int forced) {
  const bool supported = world >= 2 && chunks == 1;
  return supported && (forced >= 0 ? forced != 0 : world >= 3);
}

// The forward sends Q (and the mask) out and brings the partial O and its LSE home; the backward sends Q
// (unless the forward's blocks were kept), dO, LSE and D (and the mask) out and brings dQ home. Partials
// travel as float32, or as float16 plus a scale per row.
LvPlan plan_lv(const DistProblem& pb, int world, int rank, bool masked, LvPass pass, const PlanDevice& dev,
               bool query_kept) {
  const sched::RowBytes rb(pb.dims);
  const bool fwd = pass == LvPass::Forward;
  const size_t bwd_out_row = (query_kept ? 1 : 2) * rb.q + 2 * rb.lse;
  const size_t out_row = (fwd ? rb.q : bwd_out_row) + (masked ? rb.mask : 0);
  const int64_t mq = max_shard(pb.lq_total, world), my_lq = shard_of(pb.lq_total, world, rank).length;
  const double flops = block_flops(pb.dims, mq, max_shard(pb.lkv_total, world), pass);
  const auto home_row = [&](PartialPrecision p) {  // float16 partials travel with a scale per row
    const size_t partial_row = p == PartialPrecision::Float16 ? rb.o16 + rb.lse : rb.o32;
    return fwd ? partial_row + rb.lse : partial_row;
  };
  const auto trip_bytes = [&](PartialPrecision p) { return static_cast<double>(mq) * (out_row + home_row(p)); };
  LvPlan plan;
  plan.partials = choose_partials(pb.partials, pb.dims.dtype,
                                  pb.link_gbps > 0 ? trip_bytes(PartialPrecision::Float32) / (pb.link_gbps * 1e9) : 0,
                                  dev.flops_per_second > 0 ? flops / dev.flops_per_second : 0);
  plan.chunks = row_chunks(mq, trip_bytes(plan.partials), pb.link_gbps, flops, dev.flops_per_second, pass);
  const int64_t kv_rows = shard_of(pb.lkv_total, world, rank).length;
  const double first_hop = static_cast<double>(my_lq) * out_row, last_hop = static_cast<double>(my_lq) * home_row(plan.partials);
  // Where the backward leaves its last hop exposed (stacked, gathered), 'auto' sends it as float16 once float32
  // would keep it over 0.1 ms (2x H200, stacked: 256x128K over host memory, 0.15 ms, 2.23 against 2.26 ms in two
  // runs; over NVLink float16 was no faster at 256x128K, 16 us, nor at 1024x64K, 64 us). From global sizes: every
  // rank must send what the others expect.
  const auto exposed_partials = [&](double hop_rows) {
    const bool long_hop = pb.link_gbps > 0 && loaded_seconds(hop_rows * home_row(PartialPrecision::Float32), pb.link_gbps) > 100e-6;
    return !fwd && pb.partials == PartialPrecision::Auto && pb.dims.dtype != DType::F32 && long_hop ? PartialPrecision::Float16
                                                                                                   : plan.partials;
  };
  const char* gather_env = std::getenv("XATTN_LV_GATHER");
  const int gather = pb.gather >= 0 ? pb.gather : gather_env && *gather_env ? (std::atoi(gather_env) != 0) : -1;
  // Gathered, the visiting blocks are one launch and their bytes travel all at once: the hops carry P-1 blocks.
  plan.gathered = gather_blocks(world, plan.chunks, gather);
  const double hop_blocks = plan.gathered ? world - 1 : 1;
  // Whether the backward stacks its own rows onto the visiting ones, like the partials it then sends, is decided
  // from global sizes (the largest shards): every rank alike.
  const PartialPrecision stacked_partials = exposed_partials(hop_blocks * static_cast<double>(mq));
  const double stacked_hop = hop_blocks * static_cast<double>(mq) * home_row(stacked_partials);
  if (!fwd && world > 1 && plan.chunks == 1 &&
      stack_own_rows(pb.dims, static_cast<int64_t>(hop_blocks) * mq, mq, max_shard(pb.lkv_total, world), stacked_hop, pb.link_gbps)) {
    plan.partials = stacked_partials;
    const auto split_of = [&](int64_t own_rows, int64_t own_kv_rows) {
      const double own_seconds =
          dev.flops_per_second > 0 ? block_flops(pb.dims, own_rows, own_kv_rows, pass) / dev.flops_per_second : 0;
      return stacked_split(pb.dims.batch, own_rows, own_kv_rows, hop_blocks * static_cast<double>(own_rows) * out_row,
                           pb.link_gbps, own_seconds, dev.bwd_kv_rows_per_wave);
    };
    plan.split = split_of(my_lq, kv_rows);
    plan.stack_last = !plan.split.second.empty();  // nothing left to stack: the pieces below
    if (plan.stack_last) {
      plan.inputs_together = split_of(mq, max_shard(pb.lkv_total, world)).first.empty();
      return plan;
    }
  }
  // Otherwise the own block's pieces go around the visiting work: the first beside the blocks' arrival, the
  // second beside their results' trip home.
  plan.split = own_split(pb.dims.batch, kv_rows, hop_blocks * first_hop, hop_blocks * last_hop, pb.link_gbps,
                         fwd ? 0 : dev.bwd_kv_rows_per_wave, pass);
  return plan;
}

}  // namespace xattn
