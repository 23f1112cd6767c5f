// LV-XAttn with its blocks gathered (lv_plan.h: gather_blocks). K/V stay where they are and the same bytes
// travel as around the ring, but every rank sends its text block to every other rank at once and computes
// all the blocks it receives in one launch, stacked (stacked_rows.h), where the ring runs one launch a step;
// each result then goes straight home. The own block runs in the plan's pieces around that launch
// (own_block.h): its first piece while the blocks arrive, its second beside the results' trip home or, in
// a backward where the plan stacks it (LvPlan::stack_last), in the launch, so the shard's float32 dK/dV are
// written once.
//
// Peer k (1 .. P-1) of rank r: r sends its block to r+k and receives the block of r-k, the one ring step k
// would bring (kept Q blocks are indexed alike); results go back the other way. Each pair of ranks posts
// its exchanges in the same order of k, so the transports pair them up.
#include <string>
#include <vector>

#include "core/schedule_lv_parts.h"
#include "core/schedule_trace.h"

namespace xattn {

using namespace sched;
using namespace lv_parts;

namespace {

struct Peers {
  int world, rank;
  int to(int k) const { return mod(rank + k, world); }    // where this rank's block goes at k
  int from(int k) const { return mod(rank - k, world); }  // whose block comes in at k
};

// Exchanges, for every peer k, of this rank's `mine` (mine_bytes) out against block k-1 of `theirs` in.
std::vector<Exchange> to_every_peer(const Peers& p, const void* mine, size_t mine_bytes, const std::vector<void*>& theirs,
                                    const std::vector<size_t>& their_bytes) {
  std::vector<Exchange> batch;
  for (int k = 1; k < p.world; ++k)
    batch.push_back({mine, mine_bytes, p.to(k), theirs[k - 1], their_bytes[k - 1], p.from(k)});
  return batch;
}

// The way back: block k-1 of `theirs` home to its owner, this rank's result from peer k into mine[k-1].
std::vector<Exchange> home_from_every_peer(const Peers& p, const std::vector<void*>& theirs, const std::vector<size_t>& their_bytes,
                                           const std::vector<void*>& mine, size_t mine_bytes) {
  std::vector<Exchange> batch;
  for (int k = 1; k < p.world; ++k)
    batch.push_back({theirs[k - 1], their_bytes[k - 1], p.from(k), mine[k - 1], mine_bytes, p.to(k)});
  return batch;
}

void append(std::vector<Exchange>& to, const std::vector<Exchange>& more) { to.insert(to.end(), more.begin(), more.end()); }

// One named buffer per peer: `rows[k]` rows of `row_bytes` each.
std::vector<void*> per_peer(DistAttention::Buffers& buf, const std::string& name, const std::vector<int64_t>& rows, size_t row_bytes) {
  std::vector<void*> out;
  for (size_t k = 0; k < rows.size(); ++k) out.push_back(buf.get(name + std::to_string(k), rows[k] * row_bytes));
  return out;
}

std::vector<size_t> bytes_of(const std::vector<int64_t>& rows, size_t row_bytes) {
  std::vector<size_t> out;
  for (int64_t n : rows) out.push_back(n * row_bytes);
  return out;
}

// How each visiting block's float32 partial result (O or dQ, [B, rows, H, D]) goes home: as it is, or packed
// to float16 with a scale per row (partial_wire.h), with this rank's own partials coming back the same way.
class PartialsHome {
 public:
  PartialsHome(Backend& be, DistAttention::Buffers& buf, const AttnDims& d, PartialPrecision p, const std::string& name,
               const std::vector<int64_t>& out_rows, int64_t my_lq)
      : be_(be), d_(d), rb_(d), out_rows_(out_rows), my_lq_(my_lq), packed_(p == PartialPrecision::Float16) {
    if (!packed_) return;
    const std::vector<int64_t> mine(out_rows.size(), my_lq);
    wire_out_ = per_peer(buf, name + ".wo", out_rows, rb_.o16);
    scale_out_ = per_peer(buf, name + ".so", out_rows, rb_.lse);
    wire_home_ = per_peer(buf, name + ".wh", mine, rb_.o16);
    scale_home_ = per_peer(buf, name + ".sh", mine, rb_.lse);
  }

  // Exchanges that send every block's partial (out[k]) home, packed first where float16, and receive this
  // rank's from every peer: into home[k], or onto the wire that unpack() and home() read.
  std::vector<Exchange> exchanges(const Peers& peers, const std::vector<void*>& out, const std::vector<void*>& home) {
    if (!packed_) return home_from_every_peer(peers, out, bytes_of(out_rows_, rb_.o32), home, my_lq_ * rb_.o32);
    for (size_t k = 0; k < out.size(); ++k)
      be_.partial_to_wire(d_, out_rows_[k], static_cast<const float*>(out[k]), static_cast<uint16_t*>(wire_out_[k]),
                          static_cast<float*>(scale_out_[k]));
    std::vector<Exchange> batch = home_from_every_peer(peers, wire_out_, bytes_of(out_rows_, rb_.o16), wire_home_, my_lq_ * rb_.o16);
    append(batch, home_from_every_peer(peers, scale_out_, bytes_of(out_rows_, rb_.lse), scale_home_, my_lq_ * rb_.lse));
    return batch;
  }

  // Once the exchanges are waited for: this rank's partial from peer k as float32 in home[k].
  void unpack(size_t k, void* home) {
    if (packed_)
      be_.partial_from_wire(d_, my_lq_, static_cast<const uint16_t*>(wire_home_[k]), static_cast<const float*>(scale_home_[k]),
                            static_cast<float*>(home));
  }

  // This rank's partial from peer k as it came (for Backend::merge_final), with its LSE.
  HomePartial home(size_t k, const void* home, const void* lse) const {
    HomePartial p;
    p.lse = static_cast<const float*>(lse);
    if (!packed_) {
      p.o = static_cast<const float*>(home);
      return p;
    }
    p.wire = static_cast<const uint16_t*>(wire_home_[k]);
    p.scale = static_cast<const float*>(scale_home_[k]);
    return p;
  }

 private:
  Backend& be_;
  const AttnDims& d_;
  const RowBytes rb_;
  const std::vector<int64_t> out_rows_;
  const int64_t my_lq_;
  const bool packed_;
  std::vector<void*> wire_out_, scale_out_, wire_home_, scale_home_;
};

}  // namespace

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
  const std::vector<int64_t> mine(world_ - 1, my_lq);
  // Q lands where the backward of the same Q will look for it (kept_queries.h), else in scratch.
  std::unique_ptr<KeptBlocks> kept = kept_->storage(a.q_id, bytes_of(in.rows, rb.q));
  const std::vector<void*> q_in = kept ? kept->blocks : per_peer(*buf_, "lvg.q", in.rows, rb.q);
  const std::vector<void*> m_in = a.mask ? per_peer(*buf_, "lvg.m", in.rows, rb.mask) : std::vector<void*>{};
  const std::vector<void*> out_o = per_peer(*buf_, "lvg.po", in.rows, rb.o32), out_l = per_peer(*buf_, "lvg.pl", in.rows, rb.lse);
  const std::vector<void*> home_o = per_peer(*buf_, "lvg.ho", mine, rb.o32), home_l = per_peer(*buf_, "lvg.hl", mine, rb.lse);
  void* st_q = buf_->get("lvg.st_q", n * rb.q);
  auto* st_m = a.mask ? buf_->get<int32_t>("lvg.st_m", n * rb.mask) : nullptr;
  float* st_o = buf_->get<float>("lvg.st_o", n * rb.o32);
  float* st_l = buf_->get<float>("lvg.st_l", n * rb.lse);
  float* own_o = buf_->get<float>("lv.own_o", my_lq * rb.o32);
  float* own_l = buf_->get<float>("lv.own_l", my_lq * rb.lse);
  float* part_o = buf_->get<float>("lv.po", my_lq * rb.o32);
  float* part_l = buf_->get<float>("lv.pl", my_lq * rb.lse);
  const auto own_piece = [&](const OwnPiece& p, float* o, float* l) { run_piece_fwd(be_, d, kv, a, my_lq, p, o, l); };

  StepClock clock(tr_, stats_);
  stats_.partials = plan.partials;
  stats_.gathered = true;
  Trace mark(be_, rank_, [&] { return "lv forward " + shape_of(pb_) + plan_of(pb_, plan); });
  Transport::Handle hq = 0;
  first_hop_beside(be_, tr_, [&] { own_piece(plan.split.first, own_o, own_l); }, [&] {
    std::vector<Exchange> batch = to_every_peer(peers, a.q, my_lq * rb.q, q_in, bytes_of(in.rows, rb.q));
    if (a.mask) append(batch, to_every_peer(peers, a.mask, my_lq * rb.mask, m_in, bytes_of(in.rows, rb.mask)));
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
    unstack_block(be_, to, in, k, st_o, out_o[k]);
    unstack_block(be_, tl, in, k, st_l, out_l[k]);
  }
  mark("visit", 1);
  PartialsHome link(be_, *buf_, d, plan.partials, "lvg.o", in.rows, my_lq);
  std::vector<Exchange> batch = link.exchanges(peers, out_o, home_o);
  append(batch, home_from_every_peer(peers, out_l, bytes_of(in.rows, rb.lse), home_l, my_lq * rb.lse));
  const Transport::Handle hhome = tr_.post(batch);
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
  for (size_t k = 0; k + 1 < home_o.size(); ++k) {
    link.unpack(k, home_o[k]);
    be_.lse_merge(d, my_lq, own_o, own_l, static_cast<const float*>(home_o[k]), static_cast<const float*>(home_l[k]));
  }
  const size_t last = home_o.size() - 1;  // merged straight into the final O, from the wire where it came on one
  be_.merge_final(d, my_lq, 0, my_lq, own_o, own_l, link.home(last, home_o[last], home_l[last]), a.o, a.lse);
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
  const std::vector<int64_t> mine(world_ - 1, my_lq);
  const OwnSplit& split = plan.split;
  float* drow = buf_->get<float>("lvb.drow", my_lq * rb.lse);
  // Each input's blocks as they arrive (Q kept by the forward, where it was), and the own block's tensor.
  struct Input {
    const void* own;
    size_t row_bytes;
    RowTensor t;
    std::vector<void*> in;
  };
  const RowTensor tq{B, rb.q / B}, tl{B * d.heads, 4}, tmask{B, rb.mask / B};
  std::vector<Input> inputs{{a.q, rb.q, tq, kept ? kept->blocks : per_peer(*buf_, "lvgb.q", in.rows, rb.q)},
                            {a.dout, rb.q, tq, per_peer(*buf_, "lvgb.do", in.rows, rb.q)},
                            {a.lse, rb.lse, tl, per_peer(*buf_, "lvgb.l", in.rows, rb.lse)},
                            {drow, rb.lse, tl, per_peer(*buf_, "lvgb.d", in.rows, rb.lse)}};
  if (a.mask) inputs.push_back({a.mask, rb.mask, tmask, per_peer(*buf_, "lvgb.m", in.rows, rb.mask)});
  const bool stacked = plan.stack_last;  // the own rows in the visiting blocks' launch (else its pieces around it)
  const StackedBwd st = stacked ? stacked_bwd_buffers(*buf_, d, all.total(), mq, a.mask != nullptr) : StackedBwd{};
  // The visiting rows alone: over the first piece's visual rows where stacked, over every visual row where not.
  const StackedBwd sv = stacked && split.first.empty() ? StackedBwd{}
                                                       : stacked_bwd_buffers(*buf_, d, in.total(), mq, a.mask != nullptr, "lvgb.sv");
  const std::vector<void*> dq_out = per_peer(*buf_, "lvgb.dq", in.rows, rb.o32), dq_home = per_peer(*buf_, "lvgb.dqh", mine, rb.o32);
  const auto piece_bwd = [&](const OwnPiece& p, auto... block) { run_piece_bwd(be_, d, kv, a, p, block...); };
  // Stacks every input over `blocks` (the visiting blocks, then the own one where it has a place) into `s`.
  const auto stack_inputs = [&](const StackedBlocks& blocks, const StackedBwd& s) {
    void* dst[] = {s.q, s.dout, s.lse, s.drow, s.mask};
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<const void*> srcs(inputs[i].in.begin(), inputs[i].in.end());
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
  Transport::Handle hin = 0;
  first_hop_beside(
      be_, tr_,
      [&] {
        be_.zero(a.dq, my_lq * rb.o32);
        piece_bwd(split.first, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/false);
      },
      [&] {
        std::vector<Exchange> batch;
        for (size_t i = kept ? 1 : 0; i < inputs.size(); ++i)
          append(batch, to_every_peer(peers, inputs[i].own, my_lq * inputs[i].row_bytes, inputs[i].in, bytes_of(in.rows, inputs[i].row_bytes)));
        hin = tr_.post(batch);
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
      unstack_block(be_, to, all, k, st.dq, dq_out[k]);
      if (!split.first.empty()) add_block(be_, to, in, k, sv.dq, static_cast<float*>(dq_out[k]), sv.scratch);
    }
    add_block(be_, to, all, in.rows.size(), st.dq, a.dq, st.scratch);
  } else {
    // The visiting rows over the second piece's visual rows (writing their dK/dV) and the first's (adding).
    stack_inputs(in, sv);
    piece_bwd(split.second, in.total(), sv.q, sv.dout, sv.lse, sv.drow, sv.mask, sv.dq, /*accumulate_dkv=*/false);
    piece_bwd(split.first, in.total(), sv.q, sv.dout, sv.lse, sv.drow, sv.mask, sv.dq, /*accumulate_dkv=*/true);
    for (size_t k = 0; k < in.rows.size(); ++k) unstack_block(be_, to, in, k, sv.dq, dq_out[k]);
  }
  mark("visit", 1);
  PartialsHome link(be_, *buf_, d, plan.partials, "lvgb.dq", in.rows, my_lq);
  const Transport::Handle hdq = tr_.post(link.exchanges(peers, dq_out, dq_home));
  if (!stacked) {  // the own block's second piece beside the results' trip home
    piece_bwd(split.second, my_lq, a.q, a.dout, a.lse, drow, a.mask, a.dq, /*accumulate_dkv=*/true);
    mark("own2");
  }
  clock.wait(hdq);
  mark("got-home", 0);
  for (size_t k = 0; k < dq_home.size(); ++k) {
    link.unpack(k, dq_home[k]);
    be_.add_f32(a.dq, static_cast<const float*>(dq_home[k]), static_cast<size_t>(my_lq * rb.o32 / 4));
  }
  mark("done");
  kept_->give_back(std::move(kept));
}

}  // namespace xattn
