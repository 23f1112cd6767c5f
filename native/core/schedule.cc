#include "core/schedule.h"

#include <cstdlib>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/schedule_internal.h"
#include "core/schedule_trace.h"
#include "core/shard.h"

namespace xattn {

Algorithm parse_algorithm(const std::string& name) {
  if (name == "lv-xattn") return Algorithm::LvXAttn;
  if (name == "ring") return Algorithm::Ring;
  fail(ErrorCode::InvalidArgument, "unknown attention algorithm '" + name + "' (expected lv-xattn or ring)");
}

const char* algorithm_name(Algorithm a) { return a == Algorithm::LvXAttn ? "lv-xattn" : "ring"; }

PartialPrecision parse_partials(const std::string& name) {
  if (name == "float32") return PartialPrecision::Float32;
  if (name == "float16") return PartialPrecision::Float16;
  if (name == "auto") return PartialPrecision::Auto;
  fail(ErrorCode::InvalidArgument, "partials must be 'auto', 'float32' or 'float16', got '" + name + "'");
}

// How many LV-XAttn forwards keep their visiting Q blocks for their backwards where $XATTN_LV_KEEP_Q
// fixes it (then calls cannot raise it); nullopt where it is unset.
static std::optional<size_t> kept_queries_fixed() {
  const char* v = std::getenv("XATTN_LV_KEEP_Q");
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  require(*end == '\0' && n >= 0 && n <= 1024, ErrorCode::InvalidArgument,
          std::string("XATTN_LV_KEEP_Q must be an integer in 0..1024 (0: never keep), got '") + v + "'");
  return static_cast<size_t>(n);
}

static std::unique_ptr<KeptQueries> kept_queries(Backend& backend) {
  const std::optional<size_t> fixed = kept_queries_fixed();
  return std::make_unique<KeptQueries>(backend, fixed.value_or(DistAttention::kKeptQueries), fixed.has_value());
}

DistAttention::DistAttention(Backend& backend, Transport& transport, const DistProblem& problem)
    : be_(backend), tr_(transport), pb_(problem), rank_(transport.rank()), world_(transport.world_size()),
      buf_(std::make_unique<Buffers>(backend)), kept_(kept_queries(backend)) {
  pb_.dims.validate();
  require(pb_.lq_total >= 1, ErrorCode::InvalidArgument, "textTokens must be >= 1");
  require(pb_.lkv_total >= 1, ErrorCode::InvalidArgument, "visualTokens must be >= 1");
}

DistAttention::~DistAttention() { sched::trace_flush(be_, rank_); }

int64_t DistAttention::local_lq() const { return shard_of(pb_.lq_total, world_, rank_).length; }
int64_t DistAttention::local_lkv() const { return shard_of(pb_.lkv_total, world_, rank_).length; }
int64_t DistAttention::visiting_lq(int step) const {
  return shard_of(pb_.lq_total, world_, sched::mod(rank_ - step, world_)).length;
}

using namespace sched;

// Ring moves the large K/V blocks and waits on the link, so it takes the path with the most bandwidth;
// LV-XAttn's small blocks hide under compute, which then wants every SM.
static TransferNeed need_of(Algorithm algo) {
  return algo == Algorithm::Ring ? TransferNeed::PeakBandwidth : TransferNeed::ComputeBeside;
}

void DistAttention::forward(Algorithm algo, const DistFwdArgs& a) {
  TransferScope scope(be_, tr_, need_of(algo), pb_.comm);
  if (algo == Algorithm::Ring) ring_forward(a);
  else lv_forward(a);
}

void DistAttention::backward(Algorithm algo, const DistBwdArgs& a) {
  TransferScope scope(be_, tr_, need_of(algo), pb_.comm);
  if (algo == Algorithm::Ring) ring_backward(a);
  else lv_backward(a);
}

void DistAttention::finish_forward(const float* acc_o, const float* acc_lse, const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const int64_t lq = local_lq();
  be_.cast_from_f32(d.dtype, acc_o, a.o, static_cast<size_t>(d.batch * lq * d.heads * d.head_dim));
  be_.copy(a.lse, acc_lse, static_cast<size_t>(d.batch * d.heads * lq) * 4);
}

void DistAttention::merge_step(bool last, float* acc_o, float* acc_lse, const float* part_o, const float* part_lse,
                               const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const int64_t lq = local_lq();
  if (!last) return be_.lse_merge(d, lq, acc_o, acc_lse, part_o, part_lse);
  HomePartial part;
  part.o = part_o;
  part.lse = part_lse;
  be_.merge_final(d, lq, 0, lq, acc_o, acc_lse, part, a.o, a.lse);
}

// Ring forward: Q stays; K/V blocks rotate (P-1 hops) and every step merges into a local accumulator.
void DistAttention::ring_forward(const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const bool comm = pb_.comm && P > 1;
  const int64_t lq = local_lq(), mkv = max_shard(pb_.lkv_total, P);
  void* kbuf[2] = {buf_->get("ring.k0", mkv * rb.kv), buf_->get("ring.k1", mkv * rb.kv)};
  void* vbuf[2] = {buf_->get("ring.v0", mkv * rb.kv), buf_->get("ring.v1", mkv * rb.kv)};
  float* acc_o = buf_->get<float>("ring.o", lq * rb.o32);
  float* acc_l = buf_->get<float>("ring.l", lq * rb.lse);
  float* part_o = buf_->get<float>("ring.po", lq * rb.o32);
  float* part_l = buf_->get<float>("ring.pl", lq * rb.lse);

  StepClock clock(tr_, stats_);
  Transport::Handle hkv = 0;
  for (int t = 0; t < P; ++t) {
    const int s = t % 2;
    const int src = comm ? mod(r - t, P) : r;
    const Shard kv = shard_of(pb_.lkv_total, P, src);
    const void* k = (t == 0 || !comm) ? a.k : kbuf[s];
    const void* v = (t == 0 || !comm) ? a.v : vbuf[s];
    if (comm && t > 0) clock.wait(hkv);
    if (comm && t < P - 1) {
      const int64_t nkv = shard_of(pb_.lkv_total, P, mod(r - t - 1, P)).length;
      hkv = tr_.post({{k, kv.length * rb.kv, next, kbuf[1 - s], nkv * rb.kv, prev},
                      {v, kv.length * rb.kv, next, vbuf[1 - s], nkv * rb.kv, prev}});
    }
    const AttnBlock blk{lq, kv.length, kv.begin, a.mask};
    be_.attn_fwd(d, blk, {a.q, k, v, t == 0 ? acc_o : part_o, t == 0 ? acc_l : part_l});
    if (t > 0) merge_step(t == P - 1, acc_o, acc_l, part_o, part_l, a);
  }
  if (P == 1) finish_forward(acc_o, acc_l, a);
}

// Ring backward: K/V rotate (P-1 hops) with float32 dK/dV accumulators (P hops, the last returns them
// to the owner); dQ accumulates locally.
void DistAttention::ring_backward(const DistBwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const bool comm = pb_.comm && P > 1;
  const int64_t lq = local_lq(), mkv = max_shard(pb_.lkv_total, P), my_kv = local_lkv();
  void* kb[2] = {buf_->get("ringb.k0", mkv * rb.kv), buf_->get("ringb.k1", mkv * rb.kv)};
  void* vb[2] = {buf_->get("ringb.v0", mkv * rb.kv), buf_->get("ringb.v1", mkv * rb.kv)};
  float* dk_acc[2] = {buf_->get<float>("ringb.dk0", mkv * rb.kv32), buf_->get<float>("ringb.dk1", mkv * rb.kv32)};
  float* dv_acc[2] = {buf_->get<float>("ringb.dv0", mkv * rb.kv32), buf_->get<float>("ringb.dv1", mkv * rb.kv32)};
  float* dk_part = buf_->get<float>("ringb.dkp", mkv * rb.kv32);
  float* dv_part = buf_->get<float>("ringb.dvp", mkv * rb.kv32);
  float* drow = buf_->get<float>("ringb.drow", lq * rb.lse);

  be_.row_dot(d, lq, a.dout, a.o, drow);
  be_.zero(a.dq, lq * rb.o32);
  if (!comm) {
    be_.zero(a.dk, my_kv * rb.kv32);
    be_.zero(a.dv, my_kv * rb.kv32);
  }
  StepClock clock(tr_, stats_);
  Transport::Handle hkv = 0, hacc = 0;
  for (int t = 0; t < P; ++t) {
    const int s = t % 2;
    const int src = comm ? mod(r - t, P) : r;
    const Shard kv = shard_of(pb_.lkv_total, P, src);
    const bool own = t == 0 || !comm;
    const void* k = own ? a.k : kb[s];
    const void* v = own ? a.v : vb[s];
    if (comm && t > 0) clock.wait(hkv);
    if (comm && t < P - 1) {
      const int64_t n = shard_of(pb_.lkv_total, P, mod(r - t - 1, P)).length;
      hkv = tr_.post({{k, kv.length * rb.kv, next, kb[1 - s], n * rb.kv, prev},
                      {v, kv.length * rb.kv, next, vb[1 - s], n * rb.kv, prev}});
    }
    const AttnBlock blk{lq, kv.length, kv.begin, a.mask};
    float* dk_t = !comm ? a.dk : (t == 0 ? dk_acc[s] : dk_part);
    float* dv_t = !comm ? a.dv : (t == 0 ? dv_acc[s] : dv_part);
    if (comm) {
      be_.zero(dk_t, kv.length * rb.kv32);
      be_.zero(dv_t, kv.length * rb.kv32);
    }
    be_.attn_bwd(d, blk, {a.q, k, v, a.dout, a.lse, drow, a.dq, dk_t, dv_t});
    if (!comm) continue;
    if (t > 0) {
      clock.wait(hacc);
      be_.add_f32(dk_acc[s], dk_part, kv.length * rb.kv32 / 4);
      be_.add_f32(dv_acc[s], dv_part, kv.length * rb.kv32 / 4);
    }
    const int64_t n = shard_of(pb_.lkv_total, P, mod(r - t - 1, P)).length;
    hacc = tr_.post({{dk_acc[s], kv.length * rb.kv32, next, dk_acc[1 - s], n * rb.kv32, prev},
                     {dv_acc[s], kv.length * rb.kv32, next, dv_acc[1 - s], n * rb.kv32, prev}});
  }
  if (comm) {
    clock.wait(hacc);
    be_.copy(a.dk, dk_acc[P % 2], my_kv * rb.kv32);
    be_.copy(a.dv, dv_acc[P % 2], my_kv * rb.kv32);
  }
}

}  // namespace xattn
