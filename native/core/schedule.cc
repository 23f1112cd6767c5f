#include "core/schedule.h"

#include <chrono>
#include <map>
#include <vector>

#include "core/error.h"
#include "core/shard.h"

namespace xattn {

Algorithm parse_algorithm(const std::string& name) {
  if (name == "lv-xattn") return Algorithm::LvXAttn;
  if (name == "ring") return Algorithm::Ring;
  fail(ErrorCode::InvalidArgument, "unknown attention algorithm '" + name + "' (expected lv-xattn or ring)");
}

const char* algorithm_name(Algorithm a) { return a == Algorithm::LvXAttn ? "lv-xattn" : "ring"; }

// Named device buffers, allocated on first use and reused by every later call (no allocation in a
// steady-state step).
struct DistAttention::Buffers {
  explicit Buffers(Backend& be) : be(be) {}
  ~Buffers() {
    for (auto& kv : slots) be.free(kv.second.first);
  }
  template <typename T = void>
  T* get(const std::string& name, size_t bytes) {
    auto it = slots.find(name);
    if (it == slots.end() || it->second.second < bytes) {
      if (it != slots.end()) be.free(it->second.first);
      void* p = be.alloc(bytes ? bytes : 1);
      slots[name] = {p, bytes};
      return static_cast<T*>(p);
    }
    return static_cast<T*>(it->second.first);
  }
  Backend& be;
  std::map<std::string, std::pair<void*, size_t>> slots;
};

DistAttention::DistAttention(Backend& backend, Transport& transport, const DistProblem& problem)
    : be_(backend), tr_(transport), pb_(problem), rank_(transport.rank()), world_(transport.world_size()),
      buf_(std::make_unique<Buffers>(backend)) {
  pb_.dims.validate();
  require(pb_.lq_total >= 1, ErrorCode::InvalidArgument, "textTokens must be >= 1");
  require(pb_.lkv_total >= 1, ErrorCode::InvalidArgument, "visualTokens must be >= 1");
}

DistAttention::~DistAttention() = default;

int64_t DistAttention::local_lq() const { return shard_of(pb_.lq_total, world_, rank_).length; }
int64_t DistAttention::local_lkv() const { return shard_of(pb_.lkv_total, world_, rank_).length; }

namespace {

// Per-row sizes of each tensor kind, in bytes.
struct RowBytes {
  size_t q, kv, o32, kv32, lse, mask;
  explicit RowBytes(const AttnDims& d)
      : q(d.batch * d.heads * d.head_dim * dtype_size(d.dtype)),
        kv(d.batch * d.kv_heads * d.head_dim * dtype_size(d.dtype)),
        o32(d.batch * d.heads * d.head_dim * 4),
        kv32(d.batch * d.kv_heads * d.head_dim * 4),
        lse(d.batch * d.heads * 4),
        mask(d.batch * 2 * 4) {}
};

int mod(int a, int p) { return ((a % p) + p) % p; }

// Times host waits and counts bytes for DistStats.
class StepClock {
 public:
  StepClock(Transport& tr, DistStats& st) : tr_(tr), st_(st), start_bytes_(tr.bytes_sent()) { st_ = {}; }
  ~StepClock() { st_.bytes_sent = tr_.bytes_sent() - start_bytes_; }
  void wait(Transport::Handle h) {
    auto t0 = std::chrono::steady_clock::now();
    tr_.wait(h);
    st_.comm_wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  Transport& tr_;
  DistStats& st_;
  uint64_t start_bytes_;
};

// Tells the backend that transfers run alongside its kernels for the lifetime of a schedule call.
class CommOverlap {
 public:
  CommOverlap(Backend& be, bool on) : be_(be), on_(on) {
    if (on_) be_.set_comm_overlap(true);
  }
  ~CommOverlap() {
    if (on_) be_.set_comm_overlap(false);
  }
  CommOverlap(const CommOverlap&) = delete;
  CommOverlap& operator=(const CommOverlap&) = delete;

 private:
  Backend& be_;
  bool on_;
};

}  // namespace

void DistAttention::forward(Algorithm algo, const DistFwdArgs& a) {
  CommOverlap overlap(be_, pb_.comm && world_ > 1);
  if (algo == Algorithm::Ring) ring_forward(a);
  else lv_forward(a);
}

void DistAttention::backward(Algorithm algo, const DistBwdArgs& a) {
  CommOverlap overlap(be_, pb_.comm && world_ > 1);
  if (algo == Algorithm::Ring) ring_backward(a);
  else lv_backward(a);
}

void DistAttention::finish_forward(const float* acc_o, const float* acc_lse, const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const int64_t lq = local_lq();
  be_.cast_from_f32(d.dtype, acc_o, a.o, static_cast<size_t>(d.batch * lq * d.heads * d.head_dim));
  be_.copy(a.lse, acc_lse, static_cast<size_t>(d.batch * d.heads * lq) * 4);
}

// LV-XAttn forward: step t computes the visiting block Q_{r-t} against local K/V, merges it into the
// accumulator that arrived with it, and passes both on; after P steps rank r+1 holds its own result.
// That last hop cannot overlap compute, so it carries O already cast to the output dtype (half the
// bytes of the float32 accumulator in bf16/fp16; the owner would cast it anyway) straight into the
// owner's output tensors.
void DistAttention::lv_forward(const DistFwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const bool comm = pb_.comm && P > 1;
  const Shard kv = shard_of(pb_.lkv_total, P, r);
  const int64_t mq = max_shard(pb_.lq_total, P);
  void* qbuf[2] = {buf_->get("lv.q0", mq * rb.q), buf_->get("lv.q1", mq * rb.q)};
  int32_t* mbuf[2] = {nullptr, nullptr};
  if (a.mask) mbuf[0] = buf_->get<int32_t>("lv.m0", mq * rb.mask), mbuf[1] = buf_->get<int32_t>("lv.m1", mq * rb.mask);
  float* acc_o[2] = {buf_->get<float>("lv.o0", mq * rb.o32), buf_->get<float>("lv.o1", mq * rb.o32)};
  float* acc_l[2] = {buf_->get<float>("lv.l0", mq * rb.lse), buf_->get<float>("lv.l1", mq * rb.lse)};
  float* part_o = buf_->get<float>("lv.po", mq * rb.o32);
  float* part_l = buf_->get<float>("lv.pl", mq * rb.lse);
  void* out_o = comm ? buf_->get("lv.out", mq * rb.q) : nullptr;  // the last hop's O in the output dtype

  StepClock clock(tr_, stats_);
  Transport::Handle hq = 0, hacc = 0;
  for (int t = 0; t < P; ++t) {
    const int s = comm ? t % 2 : 0;  // without communication one accumulator collects every step
    const int src = comm ? mod(r - t, P) : r;
    const int64_t lq = shard_of(pb_.lq_total, P, src).length;
    const void* q = (t == 0 || !comm) ? a.q : qbuf[s];
    const int32_t* m = (t == 0 || !comm) ? a.mask : mbuf[s];
    if (comm && t > 0) clock.wait(hq);
    if (comm && t < P - 1) {  // prefetch the next visiting block while this one computes
      const int64_t nlq = shard_of(pb_.lq_total, P, mod(r - t - 1, P)).length;
      std::vector<Exchange> batch{{q, lq * rb.q, next, qbuf[1 - s], nlq * rb.q, prev}};
      if (a.mask) batch.push_back({m, lq * rb.mask, next, mbuf[1 - s], nlq * rb.mask, prev});
      hq = tr_.post(batch);
    }
    const AttnBlock blk{lq, kv.length, kv.begin, m};
    if (t == 0 || !comm) {
      be_.attn_fwd(d, blk, {q, a.k, a.v, t == 0 ? acc_o[s] : part_o, t == 0 ? acc_l[s] : part_l});
      if (t > 0) be_.lse_merge(d, lq, acc_o[s], acc_l[s], part_o, part_l);
    } else {
      be_.attn_fwd(d, blk, {q, a.k, a.v, part_o, part_l});
      clock.wait(hacc);  // the accumulator of this block, from rank r-1
      be_.lse_merge(d, lq, acc_o[s], acc_l[s], part_o, part_l);
    }
    if (comm && t < P - 1) {  // pass the accumulator on
      const int64_t nlq = shard_of(pb_.lq_total, P, mod(r - t - 1, P)).length;
      hacc = tr_.post({{acc_o[s], lq * rb.o32, next, acc_o[1 - s], nlq * rb.o32, prev},
                       {acc_l[s], lq * rb.lse, next, acc_l[1 - s], nlq * rb.lse, prev}});
    } else if (comm) {  // the last hop: each block's result to its owner, O in the output dtype
      const int64_t my_lq = local_lq();
      be_.cast_from_f32(d.dtype, acc_o[s], out_o, static_cast<size_t>(lq * rb.o32 / 4));
      hacc = tr_.post({{out_o, lq * rb.q, next, a.o, my_lq * rb.q, prev},
                       {acc_l[s], lq * rb.lse, next, a.lse, my_lq * rb.lse, prev}});
    }
  }
  if (comm) clock.wait(hacc);
  else finish_forward(acc_o[0], acc_l[0], a);
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
    if (t > 0) be_.lse_merge(d, lq, acc_o, acc_l, part_o, part_l);
  }
  finish_forward(acc_o, acc_l, a);
}

// LV-XAttn backward: Q, dO, LSE, D (and the mask) rotate; dK/dV accumulate locally; a float32 dQ
// accumulator travels with its block and the last hop returns it to the owner.
void DistAttention::lv_backward(const DistBwdArgs& a) {
  const AttnDims& d = pb_.dims;
  const RowBytes rb(d);
  const int P = world_, r = rank_, next = mod(r + 1, P), prev = mod(r - 1, P);
  const bool comm = pb_.comm && P > 1;
  const Shard kv = shard_of(pb_.lkv_total, P, r);
  const int64_t mq = max_shard(pb_.lq_total, P), my_lq = local_lq();
  void* qb[2] = {buf_->get("lvb.q0", mq * rb.q), buf_->get("lvb.q1", mq * rb.q)};
  void* dob[2] = {buf_->get("lvb.do0", mq * rb.q), buf_->get("lvb.do1", mq * rb.q)};
  float* lb[2] = {buf_->get<float>("lvb.l0", mq * rb.lse), buf_->get<float>("lvb.l1", mq * rb.lse)};
  float* db[2] = {buf_->get<float>("lvb.d0", mq * rb.lse), buf_->get<float>("lvb.d1", mq * rb.lse)};
  int32_t* mb[2] = {nullptr, nullptr};
  if (a.mask) mb[0] = buf_->get<int32_t>("lvb.m0", mq * rb.mask), mb[1] = buf_->get<int32_t>("lvb.m1", mq * rb.mask);
  float* dq_acc[2] = {buf_->get<float>("lvb.dq0", mq * rb.o32), buf_->get<float>("lvb.dq1", mq * rb.o32)};
  float* dq_part = buf_->get<float>("lvb.dqp", mq * rb.o32);
  float* drow = buf_->get<float>("lvb.drow", my_lq * rb.lse);

  be_.row_dot(d, my_lq, a.dout, a.o, drow);
  StepClock clock(tr_, stats_);
  Transport::Handle hin = 0, hdq = 0;
  for (int t = 0; t < P; ++t) {
    const int s = t % 2;
    const int src = comm ? mod(r - t, P) : r;
    const int64_t lq = shard_of(pb_.lq_total, P, src).length;
    const bool own = t == 0 || !comm;
    const void* q = own ? a.q : qb[s];
    const void* dout = own ? a.dout : dob[s];
    const float* lse = own ? a.lse : lb[s];
    const float* dr = own ? drow : db[s];
    const int32_t* m = own ? a.mask : mb[s];
    if (comm && t > 0) clock.wait(hin);
    if (comm && t < P - 1) {
      const int64_t n = shard_of(pb_.lq_total, P, mod(r - t - 1, P)).length;
      std::vector<Exchange> batch{{q, lq * rb.q, next, qb[1 - s], n * rb.q, prev},
                                  {dout, lq * rb.q, next, dob[1 - s], n * rb.q, prev},
                                  {lse, lq * rb.lse, next, lb[1 - s], n * rb.lse, prev},
                                  {dr, lq * rb.lse, next, db[1 - s], n * rb.lse, prev}};
      if (a.mask) batch.push_back({m, lq * rb.mask, next, mb[1 - s], n * rb.mask, prev});
      hin = tr_.post(batch);
    }
    const AttnBlock blk{lq, kv.length, kv.begin, m};
    float* dq_target = (t == 0 && comm) ? dq_acc[s] : (comm ? dq_part : a.dq);
    if (t == 0 || comm) be_.zero(dq_target, lq * rb.o32);
    // The first block writes dK/dV (no zero fill, no read); later ones add to them.
    be_.attn_bwd(d, blk, {q, a.k, a.v, dout, lse, dr, dq_target, a.dk, a.dv, /*accumulate_dkv=*/t > 0});
    if (!comm) continue;
    if (t > 0) {
      clock.wait(hdq);  // this block's dQ so far, from rank r-1
      be_.add_f32(dq_acc[s], dq_part, lq * rb.o32 / 4);
    }
    const int64_t n = shard_of(pb_.lq_total, P, mod(r - t - 1, P)).length;
    hdq = tr_.post({{dq_acc[s], lq * rb.o32, next, dq_acc[1 - s], n * rb.o32, prev}});
  }
  if (comm) {
    clock.wait(hdq);
    be_.copy(a.dq, dq_acc[P % 2], my_lq * rb.o32);
  }
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
