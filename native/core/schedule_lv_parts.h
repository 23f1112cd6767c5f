// Pieces the LV-XAttn schedule's forward (schedule_lv.cc) and backward (schedule_lv_bwd.cc) share:
// byte offsets of the owner's pieces, the first hop's ordering, the plan's inputs and its trace text.
#pragma once
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/lv_plan.h"
#include "core/own_block.h"
#include "core/row_chunks.h"
#include "core/schedule.h"
#include "core/schedule_internal.h"
#include "core/shard.h"
#include "core/stacked_rows.h"

namespace xattn::lv_parts {


template <typename T>
T* at_byte(T* p, size_t offset) {
  using Byte = std::conditional_t<std::is_const_v<T>, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(p) + offset);
}

// One piece of the owner's block: its dims, block and byte offsets inside each tensor kind.
struct PieceAt {
  AttnDims d;
  AttnBlock blk;
  size_t q = 0, o32 = 0, lse = 0, kv = 0, kv32 = 0;
};

inline PieceAt piece_at(const AttnDims& d, int64_t lq, const Shard& kv, const int32_t* mask, const OwnPiece& p) {
  PieceAt at;
  at.d = d;
  at.d.batch = p.batches;
  at.blk = {lq, p.kv_rows, kv.begin + p.kv_begin, mask ? mask + p.batch_begin * lq * 2 : nullptr};
  const size_t es = dtype_size(d.dtype), q_row = d.heads * d.head_dim, kv_row = d.kv_heads * d.head_dim;
  const size_t b0 = p.batch_begin, kv_first = b0 * kv.length + p.kv_begin;
  at.q = b0 * lq * q_row * es;
  at.o32 = b0 * lq * q_row * 4;
  at.lse = b0 * d.heads * lq * 4;
  at.kv = kv_first * kv_row * es;
  at.kv32 = kv_first * kv_row * 4;
  return at;
}

// The forward of one piece of the own block (lq text rows against the rank's visual shard kv) into the float32
// partial o and its LSE l.
inline void run_piece_fwd(Backend& be, const AttnDims& d, const Shard& kv, const DistFwdArgs& a, int64_t lq, const OwnPiece& p,
                          float* o, float* l) {
  const PieceAt at = piece_at(d, lq, kv, a.mask, p);
  be.attn_fwd(at.d, at.blk, {at_byte(a.q, at.q), at_byte(a.k, at.kv), at_byte(a.v, at.kv), at_byte(o, at.o32), at_byte(l, at.lse)});
}

// The backward of one piece of the rank's visual rows for a block of lq text rows (q, dout, lse, dr, m: that
// block's inputs), adding into dq and writing or adding the piece's dK/dV rows. An empty piece does nothing.
inline void run_piece_bwd(Backend& be, const AttnDims& d, const Shard& kv, const DistBwdArgs& a, const OwnPiece& p, int64_t lq,
                          const void* q, const void* dout, const float* lse, const float* dr, const int32_t* m, float* dq,
                          bool accumulate_dkv) {
  if (p.empty()) return;  // no K/V rows: adds nothing, writes no dK/dV row
  const PieceAt at = piece_at(d, lq, kv, m, p);
  be.attn_bwd(at.d, at.blk, {at_byte(q, at.q), at_byte(a.k, at.kv), at_byte(a.v, at.kv), at_byte(dout, at.q),
                             at_byte(lse, at.lse), at_byte(dr, at.lse), at_byte(dq, at.o32),
                             at_byte(a.dk, at.kv32), at_byte(a.dv, at.kv32), accumulate_dkv});
}

// Runs `compute` (the own block's first piece) beside `post_first_hop` (the posts of the block's first
// hop, whose sends read only what is already enqueued). Where the backend enqueues, the compute goes
// first: posting costs the host tens of microseconds per transfer (NCCL), which an idle GPU would wait
// out at the start of every call. Where compute runs to completion on the host (CPU), the posts go first.
template <typename Compute, typename Post>
void first_hop_beside(Backend& be, Transport& tr, Compute&& compute, Post&& post_first_hop) {
  if (!be.enqueues()) {
    post_first_hop();
    compute();
    return;
  }
  tr.mark_send_ready();
  compute();
  post_first_hop();
}

inline PlanDevice plan_device(const Backend& be, const AttnDims& d) {
  return {be.attention_flops_per_second(), be.bwd_kv_rows_per_wave(d)};
}

// ", link 215 GB/s, 1 chunks, whole": the choices a trace line was made under.
inline std::string plan_of(const DistProblem& p, const LvPlan& plan) {
  const char* split = plan.split.second.empty() ? "whole"
                      : plan.split.first.empty() ? "whole in the last visit"
                      : plan.split.along_kv      ? "split along visual rows"
                                                 : "split along the batch";
  return ", link " + std::to_string(std::lround(p.link_gbps)) + " GB/s, " + std::to_string(plan.chunks) + " chunks, " +
         split + (plan.gathered ? ", blocks gathered" : "") + (plan.stack_last ? ", own rows stacked" : "") +
         (plan.partials == PartialPrecision::Float16 ? ", float16 partials" : "");
}

// The own block's tensors for its first hop, in the layout of bundle `b`: `naturals` (natural layout, in the
// bundle's part order; null ones are not in the bundle) gathered into `bundled`, or, with one part in one
// chunk (the slot layout is then the natural one), that tensor itself.
inline const void* own_in_bundle(Backend& be, const SlotBundle& b, int64_t n, const std::vector<const void*>& naturals,
                                 void* bundled) {
  std::vector<const void*> present;
  for (const void* p : naturals)
    if (p) present.push_back(p);
  require(present.size() == b.parts.size(), ErrorCode::Internal, "own block tensors do not match their bundle");
  if (present.size() == 1 && b.slots.chunks == 1) return present[0];
  for (size_t k = 0; k < present.size(); ++k)
    for (int c = 0; c < b.slots.chunks; ++c) {
      const int64_t rows = shard_of(n, b.slots.chunks, c).length;
      gather_chunk_to(be, b.parts[k], b.slots, n, c, present[k], static_cast<char*>(bundled) + b.offset(k, c, rows));
    }
  return bundled;
}

// A tensor of the own block in chunk slots, for its first hop: gathered into `slotted`, or, with one chunk
// (the slot layout is then the natural one), the tensor itself.
inline const void* own_in_slots(Backend& be, const RowTensor& t, const ChunkSlots& slots, int64_t n, const void* natural,
                                void* slotted) {
  return natural ? own_in_bundle(be, SlotBundle{slots, {t}}, n, {natural}, slotted) : nullptr;
}

// One backward block's per-row inputs (any may be in chunk slots; q null where it does not travel).
struct BwdRows {
  const void *q, *dout;
  const float *lse, *drow;
  const int32_t* mask;
};

// Buffers for two blocks' backward inputs stacked row-wise (stacked_rows.h), up to `rows` rows: the inputs,
// a float32 dQ for both, and the scratch add_stacked needs for one block of up to `block_rows` rows. Taken at
// the start of a call (no allocation mid-step).
struct StackedBwd {
  void *q, *dout;
  float *lse, *drow, *dq, *scratch;
  int32_t* mask;
};

inline StackedBwd stacked_bwd_buffers(DistAttention::Buffers& buf, const AttnDims& d, int64_t rows, int64_t block_rows,
                                      bool masked, const std::string& name = "lvb.st") {
  const sched::RowBytes rb(d);
  return {buf.get(name + "_q", rows * rb.q), buf.get(name + "_do", rows * rb.q), buf.get<float>(name + "_l", rows * rb.lse),
          buf.get<float>(name + "_d", rows * rb.lse), buf.get<float>(name + "_dq", rows * rb.o32),
          d.batch > 1 ? buf.get<float>(name + "_scratch", block_rows * rb.o32) : nullptr,
          masked ? buf.get<int32_t>(name + "_m", rows * rb.mask) : nullptr};
}

// Stacks block `top` (sr.first rows) over `below` (sr.second rows) into `st` and zeroes its dQ.
inline void stack_bwd_rows(Backend& be, const AttnDims& d, const StackedRows& sr, const BwdRows& top, const BwdRows& below,
                           const StackedBwd& st) {
  const sched::RowBytes rb(d);
  const size_t B = d.batch;
  const RowTensor tq{B, rb.q / B}, tl{B * d.heads, 4}, tmask{B, rb.mask / B};
  stack_rows(be, tq, sr, top.q, below.q, st.q);
  stack_rows(be, tq, sr, top.dout, below.dout, st.dout);
  stack_rows(be, tl, sr, top.lse, below.lse, st.lse);
  stack_rows(be, tl, sr, top.drow, below.drow, st.drow);
  if (st.mask) stack_rows(be, tmask, sr, top.mask, below.mask, st.mask);
  be.zero(st.dq, sr.rows() * rb.o32);
}

}  // namespace xattn::lv_parts
