// Distributed exact cross-attention over a ring of ranks, written once over Backend + Transport.
//
// LV-XAttn (schedule_lv.cc) keeps K/V local and rotates the small query-side blocks (Q, mask, O/LSE
// partials; in the backward Q, dO, LSE, D and a dQ accumulator), visiting the owner last. Ring
// Attention (schedule.cc), the baseline, rotates the K/V blocks (only the Hkv heads) and, in the
// backward, dK/dV accumulators. Transfers overlap compute; the last hop returns each result home.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/attn.h"
#include "core/backend.h"
#include "core/kept_queries.h"
#include "core/transport.h"

namespace xattn {

enum class Algorithm { LvXAttn, Ring };
struct LvPlan;  // lv_plan.h
Algorithm parse_algorithm(const std::string& name);  // "lv-xattn" | "ring"
const char* algorithm_name(Algorithm a);
PartialPrecision parse_partials(const std::string& name);  // "auto" | "float32" | "float16"

// Global problem: lq_total text rows and lkv_total visual rows, sharded contiguously by rank.
struct DistProblem {
  AttnDims dims;
  int64_t lq_total = 0;
  int64_t lkv_total = 0;
  bool comm = true;  // false: every rank computes P steps on its own blocks (the no-communication bound)
  double link_gbps = 0;  // the ranks' measured exchange bandwidth (link_probe.h); 0 = unknown
  // How LV-XAttn sends partial results (forward O, backward dQ) between ranks (partial_wire.h); Auto lets
  // each pass's plan choose (lv_plan.h). Ring ignores it.
  PartialPrecision partials = PartialPrecision::Auto;
  // Whether LV-XAttn gathers its blocks (lv_plan.h: gather_blocks): -1 as the plan decides (or $XATTN_LV_GATHER
  // says), 0 never, 1 wherever it can.
  int gather = -1;
};

// Device pointers of this rank's shards (layouts in attn.h; mask may be null on every rank). q_id is the
// Q tensor's identity (DeviceTensor::id; 0 = none, or a forward no backward follows): LV-XAttn keeps the
// Q blocks a forward receives for the backward of the same Q tensor, which must be unchanged since that
// forward (as its O and LSE are).
struct DistFwdArgs {
  const void* q; const void* k; const void* v; const int32_t* mask;
  void* o;     // [B, lq_r, H, D] storage dtype
  float* lse;  // [B, H, lq_r]
  uint64_t q_id = 0;
};

struct DistBwdArgs {
  const void* q; const void* k; const void* v; const void* o; const float* lse; const void* dout;
  const int32_t* mask;
  float* dq; float* dk; float* dv;  // float32 gradients of this rank's shards (overwritten)
  uint64_t q_id = 0;
};

struct DistStats {
  uint64_t bytes_sent = 0;     // by this rank during the last call
  double comm_wait_seconds = 0; // host time blocked on transfers (CPU); ~0 where waits are stream-ordered
  int row_chunks = 1;           // chunks each travelling text block was sent in (row_chunks.h)
  PartialPrecision partials = PartialPrecision::Float32;  // how the last LV-XAttn call sent its partials
  bool stacked = false;  // the last LV-XAttn backward ran its own rows with the last visiting block (LvPlan)
  bool gathered = false;  // the last LV-XAttn call gathered its blocks: one launch for all of them (LvPlan)
};

class DistAttention {
 public:
  DistAttention(Backend& backend, Transport& transport, const DistProblem& problem);
  ~DistAttention();
  DistAttention(const DistAttention&) = delete;
  DistAttention& operator=(const DistAttention&) = delete;

  void forward(Algorithm algo, const DistFwdArgs& a);
  void backward(Algorithm algo, const DistBwdArgs& a);
  const DistStats& last_stats() const { return stats_; }
  // Keeps the Q blocks of at least n LV-XAttn forwards (unless $XATTN_LV_KEEP_Q fixed the number).
  void keep_forwards_at_least(size_t n) { kept_->raise_cap(n); }
  int64_t local_lq() const;
  int64_t local_lkv() const;
  int64_t visiting_lq(int step) const;  // text rows of the block this rank computes at ring step `step`
  struct Buffers;  // the schedules' named device buffers (schedule_internal.h)
  // LV-XAttn forwards whose Q blocks are kept for their backwards, at most ($XATTN_LV_KEEP_Q; 0 = none).
  static constexpr int kKeptQueries = 8;

 private:
  void lv_forward(const DistFwdArgs& a);
  void lv_forward_local(const DistFwdArgs& a);
  void lv_forward_gathered(const DistFwdArgs& a, const LvPlan& plan);
  void lv_backward_gathered(const DistBwdArgs& a, const LvPlan& plan, std::unique_ptr<KeptBlocks> kept);
  void ring_forward(const DistFwdArgs& a);
  void lv_backward(const DistBwdArgs& a);
  void lv_backward_local(const DistBwdArgs& a);
  void ring_backward(const DistBwdArgs& a);
  void finish_forward(const float* acc_o, const float* acc_lse, const DistFwdArgs& a);
  // Merges a step's partial into the accumulator; the last step's merge writes the final O and LSE instead (one
  // pass, as LV-XAttn's home chunks do).
  void merge_step(bool last, float* acc_o, float* acc_lse, const float* part_o, const float* part_lse, const DistFwdArgs& a);

  Backend& be_;
  Transport& tr_;
  DistProblem pb_;
  int rank_, world_;
  std::unique_ptr<Buffers> buf_;
  std::unique_ptr<KeptQueries> kept_;
  DistStats stats_;
};

}  // namespace xattn
