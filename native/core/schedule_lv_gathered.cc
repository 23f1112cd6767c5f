// LV-XAttn with its blocks gathered (lv_plan.h: gather_blocks). K/V stay where they are and the same bytes
// travel as around the ring, but every rank sends its text block to every other rank at once and computes
// all the blocks it receives in one launch, stacked (stacked_rows.h), where the ring runs one launch a step;
// each result then goes straight home. The own block runs in the plan's pieces around that launch
// (own_block.h): its first piece while the blocks arrive, its second beside the results' trip home or, in
// a backward where the plan stacks it (LvPlan::stack_last), in the launch, so the shard's float32 dK/dV are
// written once. What travels, and how, is in gathered_messages.h.
#include <string>
#include <vector>

#include "core/gathered_messages.h"
#include "core/schedule_lv_parts.h"
#include "core/schedule_trace.h"

namespace xattn {

using namespace sched;
using namespace lv_parts;
using namespace gathered;

void DistAttention::lv_forward_gathered(const DistFwdArgs& a, const LvPlan& plan) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const Peers peers{world_, rank_};
  const Shard kv = shard_of(pb_.lkv_total, world_, rank_);
  const int64_t my_lq = local_lq();
  const size_t B = d.batch;
  const RowTensor tq{B, rb.q / B}, tmask{B, rb.mask / B}, to{B, rb.o32 / B}, tl{B * d.heads, 4};
  StackedBlocks in;  // block k-1 came from rank r-k
  for (int k = 1; k < world_; ++k) in.rows.push_back(visiting_lq(k));
  const int64_t n = in.total();
  // Q lands where the backward of the same Q will look for it (kept_queries.h), else in scratch.
  std::unique_ptr<KeptBlocks> kept = kept_->storage(a.q_id, bytes_of(in.rows, rb.q));
  const std::vector<void*> q_in = kept ? kept->blocks : per_peer(*buf_, "lvg.q", in.rows, rb.q);
  const std::vector<void*> m_in = a.mask ? per_peer(*buf_, "lvg.m", in.rows, rb.mask) : std::vector<void*>{};
  void* st_q = buf_->get("lvg.st_q", n * rb.q);
  auto* st_m = a.mask ? buf_->get<int32_t>("lvg.st_m", n * rb.mask) : nullptr;
  float* st_o = buf_->get<float>("lvg.st_o", n * rb.o32);
  float* st_l = buf_->get<float>("lvg.st_l", n * rb.lse);
  float* own_o = buf_->get<float>("lv.own_o", my_lq * rb.o32);
  float* own_l = buf_->get<float>("lv.own_l", my_lq * rb.lse);
  float* part_o = buf_->get<float>("lv.po", my_lq * rb.o32);
  float* part_l = buf_->get<float>("lv.pl", my_lq * rb.lse);
  float* unpacked = buf_->get<float>("lvg.unpacked", my_lq * rb.o32);
  ResultsHome results(be_, *buf_, d, plan.partials, "lvg.o", in.rows, my_lq, /*with_lse=*/true);
  const auto own_piece = [&](const OwnPiece& p, float* o, float* l) { run_piece_fwd(be_, d, kv, a, my_lq, p, o, l); };

  StepClock clock(tr_, stats_);
  stats_.partials = plan.partials;
  stats_.gathered = true;
  Trace mark(be_, rank_, [&] { return "lv forward " + shape_of(pb_) + plan_of(pb_, plan); });
  Transport::Handle hq = 0;
  first_hop_beside(be_, tr_, [&] { own_piece(plan.split.first, own_o, own_l); }, [&] {
    std::vector<Exchange> batch = to_every_peer(peers, a.q, my_lq, q_in, in.rows, rb.q);
    if (a.mask) {
      const std::vector<Exchange> masks = to_every_peer(peers, a.mask, my_lq, m_in, in.rows, rb.mask);
      batch.insert(batch.end(), masks.begin(), masks.end());
    }
    hq = tr_.post(batch);
  });
  mark("own1");
  clock.wait(hq);
  mark("got-q", 1);
  stack_blocks(be_, tq, in, {q_in.begin(), q_in.end()}, st_q);
  if (a.mask) stack_blocks(be_, tmask, in, {m_in.begin(), m_in.end()}, st_m);
  // Nothing travels beside this launch (every block is in, no result posted yet): the backend's plain grid,
  // sized for an idle GPU, rather than one that leaves room for NCCL's kernels.
  const bool alone = tr_.transfers_use_sms();
  if (alone) be_.set_transfer_sms(0);
  be_.attn_fwd(d, {n, kv.length, kv.begin, st_m}, {st_q, a.k, a.v, st_o, st_l});
  if (alone) be_.set_transfer_sms(tr_.transfer_sms());
  for (size_t k = 0; k < in.rows.size(); ++k) {
    unstack_block(be_, to, in, k, st_o, results.result(k));
    unstack_block(be_, tl, in, k, st_l, results.lse(k));
  }
  mark("visit", 1);
  const Transport::Handle hhome = tr_.post(results.exchanges(peers));
  const OwnSplit& split = plan.split;
  if (split.along_kv && !split.second.empty()) {
    own_piece(split.second, part_o, part_l);
    be_.lse_merge(d, my_lq, own_o, own_l, part_o, part_l);
  } else if (!split.second.empty()) {
    own_piece(split.second, own_o, own_l);
  }
  mark("own2");
  clock.wait(hhome);
  mark("got-home", 0);
  const size_t last = in.rows.size() - 1;  // merged straight into the final O, from the wire where it came on one
  for (size_t k = 0; k < last; ++k) be_.lse_merge(d, my_lq, own_o, own_l, results.home_result(k, unpacked), results.home_lse(k));
  be_.merge_final(d, my_lq, 0, my_lq, own_o, own_l, results.home(last), a.o, a.lse);
  mark("done");
  kept_->keep(a.q_id, std::move(kept));
}

void DistAttention::lv_backward_gathered(const DistBwdArgs& a, const LvPlan& plan, std::unique_ptr<KeptBlocks> kept) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const Peers peers{world_, rank_};
  const Shard kv = shard_of(pb_.lkv_total, world_, rank_);
  const int64_t my_lq = local_lq(), mq = max_shard(pb_.lq_total, world_);
  const size_t B = d.batch;
  const RowTensor to{B, rb.o32 / B};
  StackedBlocks in;  // the visiting blocks (block k-1 from rank r-k)
  for (int k = 1; k < world_; ++k) in.rows.push_back(visiting_lq(k));
  StackedBlocks all = in;  // and the own rows below them
  all.rows.push_back(my_lq);
  const OwnSplit& split = plan.split;
  float* drow = buf_->get<float>("lvb.drow", my_lq * rb.lse);
  // The inputs each block's backward reads: Q (kept by the forward where it was: it does not travel then), dO,
  // LSE, D and the mask. The travelling ones go to every peer as one message, the own block's copied into one.
  struct Input {
    const void* own;
    RowTensor t;
  };
  const RowTensor tq{B, rb.q / B}, tl{B * d.heads, 4}, tmask{B, rb.mask / B};
  std::vector<Input> inputs{{a.q, tq}, {a.dout, tq}, {a.lse, tl}, {drow, tl}};
  if (a.mask) inputs.push_back({a.mask, tmask});
  const size_t first_sent = kept ? 1 : 0;
  SlotBundle sent{ChunkSlots(1, mq), {}};
  std::vector<const void*> own_inputs;
  for (size_t i = first_sent; i < inputs.size(); ++i) {
    sent.parts.push_back(inputs[i].t);
    own_inputs.push_back(inputs[i].own);
  }
  const size_t sent_row = sent.message_bytes(1);
  void* own_bundle = buf_->get("lvgb.own", my_lq * sent_row);
  const std::vector<void*> in_sent = per_peer(*buf_, "lvgb.in", in.rows, sent_row);
  const auto block_input = [&](size_t i, size_t k) -> const void* {  // input i of visiting block k
    return i < first_sent ? kept->blocks[k] : at_byte(static_cast<const char*>(in_sent[k]), sent.offset(i - first_sent, 0, in.rows[k]));
  };
  const bool stacked = plan.stack_last;  // the own rows in the visiting blocks' launch (else its pieces around it)
  const StackedBwd st = stacked ? stacked_bwd_buffers(*buf_, d, all.total(), mq, a.mask != nullptr) : StackedBwd{};
  // The visiting rows alone: over the first piece's visual rows where stacked, over every visual row where not.
  const StackedBwd sv = stacked && split.first.empty() ? StackedBwd{}
                                                       : stacked_bwd_buffers(*buf_, d, in.total(), mq, a.mask != nullptr, "lvgb.sv");
  ResultsHome results(be_, *buf_, d, plan.partials, "lvgb.dq", in.rows, my_lq, /*with_lse=*/false);
  float* unpacked = buf_->get<float>("lvgb.unpacked", my_lq * rb.o32);
  const auto piece_bwd = [&](const OwnPiece& p, auto... block) { run_piece_bwd(be_, d, kv, a, p, block...); };
  // Stacks every input over `blocks` (the visiting blocks, then the own one where it has a place) into `s`.
  const auto stack_inputs = [&](const StackedBlocks& blocks, const StackedBwd& s) {
    void* dst[] = {s.q, s.dout, s.lse, s.drow, s.mask};
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<const void*> srcs;
      for (size_t k = 0; k < in.rows.size(); ++k) srcs.push_back(block_input(i, k));
      if (blocks.rows.size() > srcs.size()) srcs.push_back(inputs[i].own);
      stack_blocks(be_, inputs[i].t, blocks, srcs, dst[i]);
    }
    be_.zero(s.dq, blocks.total() * rb.o32);
  };

  be_.row_dot(d, my_lq, a.dout, a.o, drow);
  StepClock clock(tr_, stats_);
  stats_.partials = plan.partials;
  stats_.stacked = stacked;
  stats_.gathered = true;
  Trace mark(be_, rank_, [&] { return "lv backward " + shape_of(pb_) + plan_of(pb_, plan) + (kept ? ", Q kept" : ""); });
  // Bundled before the sends are marked ready (first_hop_beside), which read it.
  const void* own_sent = own_in_bundle(be_, sent, my_lq, own_inputs, own_bundle);
  Transport::Handle hin = 0;
  first_hop_beside(
      be_, tr_,
      [&] {
        be_.zero(a.dq, my_lq * rb.o32);
        piece_bwd(split.first, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/false);
      },
      [&] {
        hin = tr_.post(to_every_peer(peers, own_sent, my_lq, in_sent, in.rows, sent_row));
      });
  mark("own1");
  clock.wait(hin);
  mark("got-in", 1);
  if (stacked) {
    // Every row over the second piece's visual rows (writing their dK/dV), then the visiting rows over the first's.
    stack_inputs(all, st);
    piece_bwd(split.second, all.total(), st.q, st.dout, st.lse, st.drow, st.mask, st.dq, /*accumulate_dkv=*/false);
    if (!split.first.empty()) {
      stack_inputs(in, sv);
      piece_bwd(split.first, in.total(), sv.q, sv.dout, sv.lse, sv.drow, sv.mask, sv.dq, /*accumulate_dkv=*/true);
    }
    for (size_t k = 0; k < in.rows.size(); ++k) {
      unstack_block(be_, to, all, k, st.dq, results.result(k));
      if (!split.first.empty()) add_block(be_, to, in, k, sv.dq, results.result(k), sv.scratch);
    }
    add_block(be_, to, all, in.rows.size(), st.dq, a.dq, st.scratch);
  } else {
    // The visiting rows over the second piece's visual rows (writing their dK/dV) and the first's (adding).
    stack_inputs(in, sv);
    piece_bwd(split.second, in.total(), sv.q, sv.dout, sv.lse, sv.drow, sv.mask, sv.dq, /*accumulate_dkv=*/false);
    piece_bwd(split.first, in.total(), sv.q, sv.dout, sv.lse, sv.drow, sv.mask, sv.dq, /*accumulate_dkv=*/true);
    for (size_t k = 0; k < in.rows.size(); ++k) unstack_block(be_, to, in, k, sv.dq, results.result(k));
  }
  mark("visit", 1);
  const Transport::Handle hdq = tr_.post(results.exchanges(peers));
  if (!stacked) {  // the own block's second piece beside the results' trip home
    piece_bwd(split.second, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/true);
    mark("own2");
  }
  clock.wait(hdq);
  mark("got-home", 0);
  for (size_t k = 0; k < in.rows.size(); ++k)
    be_.add_f32(a.dq, results.home_result(k, unpacked), static_cast<size_t>(my_lq * rb.o32 / 4));
  mark("done");
  kept_->give_back(std::move(kept));
}

}  // namespace xattn
