// LV-XAttn: K/V stay where they are; the small text-side blocks travel around the ring. This file: the
// forward (the backward is in schedule_lv_bwd.cc).
//
// Each block visits the other ranks first and its owner last. The owner computes its own block in two
// pieces (own_block.h): the first while its block leaves, the second while the other ranks' results
// come home. So the first and the last hop, which nothing inside the call used to hide, both overlap
// compute.
#include <vector>

#include "core/partial_link.h"
#include "core/schedule_lv_parts.h"
#include "core/schedule_trace.h"

namespace xattn {

using namespace sched;
using namespace lv_parts;

// Without communication (one rank, or the no-communication bound) every step is the own block.
void DistAttention::lv_forward_local(const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int64_t lq = local_lq();
  const Shard kv = shard_of(pb_.lkv_total, world_, rank_);
  float* acc_o = buf_->get<float>("lv.o0", lq * rb.o32);
  float* acc_l = buf_->get<float>("lv.l0", lq * rb.lse);
  float* part_o = buf_->get<float>("lv.po", lq * rb.o32);
  float* part_l = buf_->get<float>("lv.pl", lq * rb.lse);
  const AttnBlock blk{lq, kv.length, kv.begin, a.mask};
  Trace mark(be_, rank_, [&] { return "lv forward " + shape_of(pb_) + ", no communication"; });
  if (world_ == 1) {  // one block: the outputs straight from the kernel, no cast or copy after it
    AttnFwdIO io{a.q, a.k, a.v, acc_o, a.lse};
    io.o_out = a.o;
    be_.attn_fwd(d, blk, io);
    return mark("done");
  }
  if (plan_lv(pb_, world_, rank_, a.mask != nullptr, LvPass::Forward, plan_device(be_, d)).gathered) {
    // As LV-XAttn gathers: the own block, then one launch over the P-1 others (here copies of it), stacked.
    const StackedBlocks sb{std::vector<int64_t>(world_ - 1, lq)};
    const size_t B = d.batch;
    const RowTensor tq{B, rb.q / B}, tmask{B, rb.mask / B}, to{B, rb.o32 / B}, tl{B * d.heads, 4};
    void* st_q = buf_->get("lvg.st_q", sb.total() * rb.q);
    auto* st_m = a.mask ? buf_->get<int32_t>("lvg.st_m", sb.total() * rb.mask) : nullptr;
    float* st_o = buf_->get<float>("lvg.st_o", sb.total() * rb.o32);
    float* st_l = buf_->get<float>("lvg.st_l", sb.total() * rb.lse);
    be_.attn_fwd(d, blk, {a.q, a.k, a.v, acc_o, acc_l});
    stack_blocks(be_, tq, sb, std::vector<const void*>(world_ - 1, a.q), st_q);
    if (a.mask) stack_blocks(be_, tmask, sb, std::vector<const void*>(world_ - 1, a.mask), st_m);
    be_.attn_fwd(d, {sb.total(), kv.length, kv.begin, st_m}, {st_q, a.k, a.v, st_o, st_l});
    for (int k = 1; k < world_; ++k) {
      unstack_block(be_, to, sb, k - 1, st_o, part_o);
      unstack_block(be_, tl, sb, k - 1, st_l, part_l);
      merge_step(k == world_ - 1, acc_o, acc_l, part_o, part_l, a);
    }
    return mark("done");
  }
  for (int t = 0; t < world_; ++t) {
    be_.attn_fwd(d, blk, {a.q, a.k, a.v, t == 0 ? acc_o : part_o, t == 0 ? acc_l : part_l});
    if (t > 0) merge_step(t == world_ - 1, acc_o, acc_l, part_o, part_l, a);
    mark("block", t);
  }
  mark("done");
}

// At step t = 1 .. P-1 rank r computes block r-t against its K/V and merges it into the float32
// accumulator that arrived with it (step 1 starts one). After step P-1 the accumulator goes home, where
// the owner merges it with its own result. It travels as float32, or as float16 with a per-row scale
// (PartialLink), never as bf16: a partial over some of the keys can be much larger than the final O, so
// rounding it to bf16 costs more than an ulp of the result.
// Blocks travel in row chunks (row_chunks.h): on a slow link the first chunk's compute and the first
// results' trip home overlap the rest of the block's transfer.
void DistAttention::lv_forward(const DistFwdArgs& a) {
  if (!pb_.comm || world_ == 1) return lv_forward_local(a);
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const Shard kv = shard_of(pb_.lkv_total, P, r);
  const int64_t mq = max_shard(pb_.lq_total, P), my_lq = local_lq();
  const LvPlan plan = plan_lv(pb_, P, r, a.mask != nullptr, LvPass::Forward, plan_device(be_, d));
  if (plan.gathered) return lv_forward_gathered(a, plan);
  const int C = plan.chunks;
  const OwnSplit& split = plan.split;
  const auto chunk = [&](int t, int c) { return shard_of(visiting_lq(t), C, c); };  // rows of chunk c at step t
  const size_t B = d.batch;
  const RowTensor tq{B, rb.q / B}, tmask{B, rb.mask / B}, to{B, rb.o32 / B}, tl{B * d.heads, 4};
  const ChunkSlots slots(C, mq);
  // Blocks in transit live in chunk slots; the own block's result in its natural layout. The accumulator
  // and its LSE travel as one message (row_chunks.h: SlotBundle): its last hop may be exposed. Q and its
  // mask travel apart: the own block's first piece always hides their hop, and one message would copy them.
  const SlotBundle ab{slots, {to, tl}};
  char* acc[2] = {buf_->get<char>("lv.acc0", ab.bytes()), buf_->get<char>("lv.acc1", ab.bytes())};
  void* qbuf[2] = {buf_->get("lv.q0", slots.bytes(tq)), buf_->get("lv.q1", slots.bytes(tq))};
  int32_t* mbuf[2] = {nullptr, nullptr};
  if (a.mask) mbuf[0] = buf_->get<int32_t>("lv.m0", slots.bytes(tmask)), mbuf[1] = buf_->get<int32_t>("lv.m1", slots.bytes(tmask));
  char* home = buf_->get<char>("lv.home", ab.bytes());  // the others' result for this rank's block
  float* part_o = buf_->get<float>("lv.po", mq * rb.o32);
  float* part_l = buf_->get<float>("lv.pl", mq * rb.lse);
  float* own_o = buf_->get<float>("lv.own_o", my_lq * rb.o32);
  float* own_l = buf_->get<float>("lv.own_l", my_lq * rb.lse);
  // Scratch only chunked blocks need (with one chunk, slots are the natural layout).
  const auto chunked_only = [&](const char* name, size_t bytes) { return C > 1 ? buf_->get(name, bytes) : nullptr; };
  PartialLink link(be_, *buf_, d, ab, plan.partials, "lv.o");
  // The Q blocks this forward receives, kept for the backward of the same Q (kept_queries.h).
  std::vector<size_t> kept_bytes;
  for (int t = 1; t < P; ++t) kept_bytes.push_back(visiting_lq(t) * rb.q);
  std::unique_ptr<KeptBlocks> kept = kept_->storage(a.q_id, kept_bytes);

  const auto own_piece = [&](const OwnPiece& p, float* o, float* l) { run_piece_fwd(be_, d, kv, a, my_lq, p, o, l); };
  // Sends chunk c of the block of step t on and receives chunk c of the block of step t + 1.
  const auto pass_query = [&](int t, int c, const void* q, const int32_t* m) {
    const int64_t x = chunk(t, c).length, y = chunk(t + 1, c).length;
    const int u = (t + 1) % 2;
    std::vector<Exchange> batch{{at_byte(q, slots.offset(tq, c)), x * rb.q, next, at_byte(qbuf[u], slots.offset(tq, c)), y * rb.q, prev}};
    if (a.mask)
      batch.push_back({at_byte(m, slots.offset(tmask, c)), x * rb.mask, next, at_byte(mbuf[u], slots.offset(tmask, c)), y * rb.mask, prev});
    return tr_.post(batch);
  };

  StepClock clock(tr_, stats_);
  stats_.row_chunks = C;
  stats_.partials = plan.partials;
  Trace mark(be_, rank_, [&] { return "lv forward " + shape_of(pb_) + plan_of(pb_, plan); });
  const void* own_q = own_in_slots(be_, tq, slots, my_lq, a.q, chunked_only("lv.own_q", slots.bytes(tq)));
  const auto* own_m = static_cast<const int32_t*>(
      a.mask ? own_in_slots(be_, tmask, slots, my_lq, a.mask, chunked_only("lv.own_m", slots.bytes(tmask))) : nullptr);
  std::vector<Transport::Handle> hq(C), hacc(C);
  first_hop_beside(be_, tr_, [&] { own_piece(split.first, own_o, own_l); },
                   [&] { for (int c = 0; c < C; ++c) hq[c] = pass_query(0, c, own_q, own_m); });
  mark("own1");
  for (int t = 1; t < P; ++t) {
    const int s = t % 2;
    const bool at_home = t == P - 1;  // then rank r+1 owns this block
    for (int c = 0; c < C; ++c) {
      const int64_t x = chunk(t, c).length, y = chunk(t + 1, c).length;
      clock.wait(hq[c]);
      mark("got-q", t, c);
      if (kept) scatter_chunk(be_, tq, slots, visiting_lq(t), c, qbuf[s], kept->blocks[t - 1]);
      if (t < P - 1) hq[c] = pass_query(t, c, qbuf[s], mbuf[s]);
      const void* q = at_byte(qbuf[s], slots.offset(tq, c));
      const int32_t* m = a.mask ? at_byte(mbuf[s], slots.offset(tmask, c)) : nullptr;
      const AttnBlock blk{x, kv.length, kv.begin, m};
      auto* o = reinterpret_cast<float*>(acc[s] + ab.offset(0, c, x));
      auto* l = reinterpret_cast<float*>(acc[s] + ab.offset(1, c, x));
      if (t == 1) {
        // At P = 2 in one chunk no transfer is in flight here (the block has arrived, its result is not
        // posted yet): the backend's plain grid, sized for an idle GPU, is then the fastest.
        const bool alone = P == 2 && C == 1 && tr_.transfers_use_sms();
        if (alone) be_.set_transfer_sms(0);
        be_.attn_fwd(d, blk, {q, a.k, a.v, o, l});
        if (alone) be_.set_transfer_sms(tr_.transfer_sms());
      } else {
        be_.attn_fwd(d, blk, {q, a.k, a.v, part_o, part_l});
        clock.wait(hacc[c]);  // this chunk's accumulator, from rank r-1
        link.arrived(c, static_cast<PartialSlot>(s), x, acc[s]);
        be_.lse_merge(d, x, o, l, part_o, part_l);
      }
      mark("visit", t, c);
      hacc[c] = tr_.post(link.exchanges(c, acc[s], x, next, at_home ? PartialSlot::Home : static_cast<PartialSlot>(1 - s),
                                        at_home ? home : acc[1 - s], y, prev));
    }
  }
  if (split.second.empty()) {
    // the block ran whole (the first piece always runs: it starts the accumulator)
  } else if (split.along_kv) {
    own_piece(split.second, part_o, part_l);
    be_.lse_merge(d, my_lq, own_o, own_l, part_o, part_l);
  } else {
    own_piece(split.second, own_o, own_l);
  }
  mark("own2");
  // Each chunk's result merges into the final O as it comes home (one pass: no unpacking, no scatter, no cast
  // of the whole block after the last chunk).
  for (int c = 0; c < C; ++c) {
    const Shard rows = chunk(P, c);
    clock.wait(hacc[c]);
    mark("got-home", c);
    be_.merge_final(d, my_lq, rows.begin, rows.length, own_o, own_l, link.home(c, rows.length, home), a.o, a.lse);
  }
  mark("done");
  kept_->keep(a.q_id, std::move(kept));
}

}  // namespace xattn
