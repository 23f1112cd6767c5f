// LV-XAttn's backward: Q (unless the forward kept it), dO, LSE and D travel like the forward's Q, a dQ
// accumulator travels with them, dK/dV stay local (schedule_lv.cc has the forward and the ring order).
// Where the visual rows far outnumber the text rows, the own block's second piece runs in one launch with the
// last visiting block (rows stacked: LvPlan::stack_last), so their float32 dK/dV are written once rather
// than written and read back; the last hop is then left exposed.
#include <algorithm>
#include <vector>

#include "core/bwd_inputs.h"
#include "core/partial_link.h"
#include "core/schedule_lv_parts.h"
#include "core/schedule_trace.h"

namespace xattn {

using namespace sched;
using namespace lv_parts;

// One rank's backward, or the no-communication bound's: every step is the own block.
void DistAttention::lv_backward_local(const DistBwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int64_t lq = local_lq();
  const Shard kv = shard_of(pb_.lkv_total, world_, rank_);
  float* drow = buf_->get<float>("lvb.drow", lq * rb.lse);
  be_.row_dot(d, lq, a.dout, a.o, drow);
  be_.zero(a.dq, lq * rb.o32);
  const AttnBlock blk{lq, kv.length, kv.begin, a.mask};
  // The launches LV-XAttn would run, each block here the own one.
  const LvPlan plan = world_ > 1 ? plan_lv(pb_, world_, rank_, a.mask != nullptr, LvPass::Backward, plan_device(be_, d),
                                           /*query_kept=*/true)  // as the trainer and bench:gpu run it
                                 : LvPlan{};
  // Gathered: the own block and the other P-1 in one launch (stacked), or the own block alone first; around
  // the ring: the last two steps in one launch (stacked), or every step alone.
  const int stacked = plan.gathered ? (plan.stack_last ? world_ : world_ - 1) : (plan.stack_last ? 2 : 0);
  stats_ = {};
  stats_.stacked = plan.stack_last;
  stats_.gathered = plan.gathered;
  Trace mark(be_, rank_, [&] { return "lv backward " + shape_of(pb_) + ", no communication" + (plan.stack_last ? ", stacked" : ""); });
  const int single = world_ - stacked;
  for (int t = 0; t < single; ++t) {  // the first step writes dK/dV (no zero fill, no read)
    be_.attn_bwd(d, blk, {a.q, a.k, a.v, a.dout, a.lse, drow, a.dq, a.dk, a.dv, /*accumulate_dkv=*/t > 0});
    mark("block", t);
  }
  if (!stacked) return;
  const StackedBlocks sb{std::vector<int64_t>(stacked, lq)};
  const StackedBwd st = stacked_bwd_buffers(*buf_, d, sb.total(), lq, a.mask != nullptr);
  const size_t B = d.batch;
  const RowTensor tq{B, rb.q / B}, tl{B * d.heads, 4}, tmask{B, rb.mask / B}, to{B, rb.o32 / B};
  const auto repeated = [&](const void* p) { return std::vector<const void*>(stacked, p); };
  stack_blocks(be_, tq, sb, repeated(a.q), st.q);
  stack_blocks(be_, tq, sb, repeated(a.dout), st.dout);
  stack_blocks(be_, tl, sb, repeated(a.lse), st.lse);
  stack_blocks(be_, tl, sb, repeated(drow), st.drow);
  if (a.mask) stack_blocks(be_, tmask, sb, repeated(a.mask), st.mask);
  be_.zero(st.dq, sb.total() * rb.o32);
  const AttnBlock all{sb.total(), kv.length, kv.begin, st.mask};
  be_.attn_bwd(d, all, {st.q, a.k, a.v, st.dout, st.lse, st.drow, st.dq, a.dk, a.dv, /*accumulate_dkv=*/single > 0});
  for (int k = 0; k < stacked; ++k) add_block(be_, to, sb, k, st.dq, a.dq, st.scratch);
  mark("stacked", single);
}

// Q, dO, LSE and D (and the mask) travel like Q in the forward, in the same row chunks where the link is
// the bottleneck; dK/dV accumulate locally; a float32 dQ accumulator starts at step 1, travels with its
// block (as float32, or as float16 with a per-row scale: PartialLink) and goes home after step P-1.
void DistAttention::lv_backward(const DistBwdArgs& a) {
  if (!pb_.comm || world_ == 1) return lv_backward_local(a);
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const Shard kv = shard_of(pb_.lkv_total, P, r);
  const int64_t mq = max_shard(pb_.lq_total, P), my_lq = local_lq();
  // The forward of this Q kept the blocks it received: then Q does not travel again (on every rank alike).
  std::unique_ptr<KeptBlocks> kept = kept_->take(a.q_id);
  require(!kept || kept->blocks.size() == static_cast<size_t>(P - 1), ErrorCode::Internal,
          "kept Q blocks do not match the ring");
  const LvPlan plan = plan_lv(pb_, P, r, a.mask != nullptr, LvPass::Backward, plan_device(be_, d), kept != nullptr);
  if (plan.gathered) return lv_backward_gathered(a, plan, std::move(kept));
  const int C = plan.chunks;
  const OwnSplit& split = plan.split;
  const auto chunk = [&](int t, int c) { return shard_of(visiting_lq(t), C, c); };  // rows of chunk c at step t
  const size_t B = d.batch;
  const RowTensor tq{B, rb.q / B}, to{B, rb.o32 / B};
  const ChunkSlots slots(C, mq);
  float* drow = buf_->get<float>("lvb.drow", my_lq * rb.lse);
  // Where nothing hides the first hop (no first piece), a block's inputs travel as one message a chunk, at
  // the cost of copying the own block's in (2x H200, 256x128K over NVLink: steps 0.04-0.05 ms shorter).
  // Where the first piece hides the hop, each travels apart, uncopied (copying 4096x32K's 16 MB dO, LSE
  // and D in read 0.04 ms a step slower in two A/Bs, within their noise). The plan decides it alike on
  // every rank (LvPlan::inputs_together).
  const BwdInputs travel(*buf_, d, slots, plan.inputs_together ? BwdInputs::together() : BwdInputs::apart(), !kept,
                         a.mask != nullptr);
  const SlotBundle db{slots, {to}};
  char* dq_acc[2] = {buf_->get<char>("lvb.dq0", db.bytes()), buf_->get<char>("lvb.dq1", db.bytes())};
  float* dq_part = buf_->get<float>("lvb.dqp", mq * rb.o32);
  // Scratch only chunked blocks need (with one chunk, slots are the natural layout).
  const auto chunked_only = [&](const char* name, size_t bytes) { return C > 1 ? buf_->get(name, bytes) : nullptr; };
  float* dq_home = static_cast<float*>(chunked_only("lvb.dq_home", my_lq * rb.o32));
  void* kept_q = kept ? chunked_only("lvb.kept_q", slots.bytes(tq)) : nullptr;  // a kept block's Q, chunk by chunk
  PartialLink dq_link(be_, *buf_, d, db, plan.partials, "lvb.dq");
  const bool stack = plan.stack_last;  // the own rows' second piece rides with the last visiting block
  const StackedBwd st = stack ? stacked_bwd_buffers(*buf_, d, mq + my_lq, std::max(mq, my_lq), a.mask != nullptr) : StackedBwd{};

  // The backward of one piece of the local K/V rows for a block of lq text rows.
  const auto piece_bwd = [&](const OwnPiece& p, auto... block) { run_piece_bwd(be_, d, kv, a, p, block...); };
  // Sends chunk c of the block of step t (its messages from `from`) on and receives chunk c of the block of
  // step t + 1.
  const auto pass_inputs = [&](int t, int c, const std::vector<const char*>& from) {
    return tr_.post(travel.exchanges(c, chunk(t, c).length, from, next, (t + 1) % 2, chunk(t + 1, c).length, prev));
  };

  be_.row_dot(d, my_lq, a.dout, a.o, drow);
  StepClock clock(tr_, stats_);
  stats_.row_chunks = C;
  stats_.partials = plan.partials;
  stats_.stacked = stack;
  Trace mark(be_, rank_, [&] { return "lv backward " + shape_of(pb_) + plan_of(pb_, plan) + (kept ? ", Q kept" : ""); });
  const std::vector<const char*> own = travel.own(be_, *buf_, my_lq, {a.q, a.dout, a.lse, drow, a.mask});
  std::vector<Transport::Handle> hin(C), hdq(C);
  first_hop_beside(
      be_, tr_,
      [&] {
        be_.zero(a.dq, my_lq * rb.o32);
        piece_bwd(split.first, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/false);
      },
      [&] { for (int c = 0; c < C; ++c) hin[c] = pass_inputs(0, c, own); });
  mark("own1");
  for (int t = 1; t < P; ++t) {
    const int s = t % 2;
    for (int c = 0; c < C; ++c) {
      const int64_t x = chunk(t, c).length, y = chunk(t + 1, c).length;
      // A kept block serves as it is in one chunk (slots are then the natural layout), else chunk by chunk.
      const void* q = !kept ? nullptr : C == 1 ? kept->blocks[t - 1] : at_byte(kept_q, slots.offset(tq, c));
      if (kept && C > 1) gather_chunk(be_, tq, slots, visiting_lq(t), c, kept->blocks[t - 1], kept_q);
      clock.wait(hin[c]);
      mark("got-in", t, c);
      if (t < P - 1) hin[c] = pass_inputs(t, c, travel.received(s));
      const BwdRows in = travel.rows(s, c, x, q);
      float* acc = reinterpret_cast<float*>(dq_acc[s] + db.offset(0, c, x));
      float* dq_t = t == 1 ? acc : dq_part;
      be_.zero(dq_t, x * rb.o32);
      if (stack && t == P - 1) {  // one chunk: own rows stacked below the visiting ones over the second piece
        const StackedRows sr{x, my_lq};
        stack_bwd_rows(be_, d, sr, in, {a.q, a.dout, a.lse, drow, a.mask}, st);
        piece_bwd(split.second, sr.rows(), st.q, st.dout, st.lse, st.drow, st.mask, st.dq, /*accumulate_dkv=*/t > 1);
        piece_bwd(split.first, x, in.q, in.dout, in.lse, in.drow, in.mask, dq_t, /*accumulate_dkv=*/true);
        add_stacked(be_, to, sr, 0, st.dq, dq_t, st.scratch);
        add_stacked(be_, to, sr, 1, st.dq, a.dq, st.scratch);
      } else if (t == 1 && c == 0) {  // writes the second piece's dK/dV rows (no memset, no read), adds to the first's
        piece_bwd(split.second, x, in.q, in.dout, in.lse, in.drow, in.mask, dq_t, /*accumulate_dkv=*/false);
        piece_bwd(split.first, x, in.q, in.dout, in.lse, in.drow, in.mask, dq_t, /*accumulate_dkv=*/true);
      } else {
        const AttnBlock blk{x, kv.length, kv.begin, in.mask};
        be_.attn_bwd(d, blk, {in.q, a.k, a.v, in.dout, in.lse, in.drow, dq_t, a.dk, a.dv, /*accumulate_dkv=*/true});
      }
      if (t > 1) {
        clock.wait(hdq[c]);  // this chunk's dQ so far, from rank r-1
        dq_link.arrived(c, static_cast<PartialSlot>(s), x, dq_acc[s]);
        be_.add_f32(acc, dq_part, static_cast<size_t>(x * rb.o32 / 4));
      }
      mark("visit", t, c);
      const bool home = t == P - 1;
      hdq[c] = tr_.post(dq_link.exchanges(c, dq_acc[s], x, next, home ? PartialSlot::Home : static_cast<PartialSlot>(1 - s),
                                          dq_acc[1 - s], y, prev));
    }
  }
  if (!stack) {
    piece_bwd(split.second, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/true);
    mark("own2");
  }
  char* back = dq_acc[P % 2];  // the others' dQ for this rank's block, in slots
  for (int c = 0; c < C; ++c) {
    clock.wait(hdq[c]);
    mark("got-home", c);
    dq_link.arrived(c, PartialSlot::Home, chunk(P, c).length, back);
    if (C > 1) scatter_chunk(be_, to, slots, my_lq, c, back, dq_home);
  }
  be_.add_f32(a.dq, C > 1 ? dq_home : reinterpret_cast<float*>(back), static_cast<size_t>(my_lq * rb.o32 / 4));
  mark("done");
  kept_->give_back(std::move(kept));
}

}  // namespace xattn
