// What gathering LV-XAttn's blocks (lv_plan.h: gather_blocks) saves a rank's compute at P ranks, on one GPU:
// the schedules' no-communication bound (every block is the rank's own, nothing travels), with the blocks
// around the ring (one launch a step; the backward stacks its last two) against gathered (the own block,
// then one launch over the other P-1, stacked; the backward all P in one). The bound is what bench:gpu
// divides LV-XAttn's steps by, so this is the compute side of a P-rank step, where P GPUs are not at hand.
// A rank of 1/P of the global shape, H32/Hkv8 d128 bf16, the link taken as `link` GB/s (the plans read it).
// Conditions take turns over rounds (the card's heat, see bench_interference.cc). One JSON line per pass,
// P and schedule: ms per call (median over rounds of the median of batches of queued calls) and each round's.
// First it checks that both schedules give the same O, LSE, dQ, dK and dV.
// Usage: xattn_gather_bench [P:lq_total:lkv_total:link ...] (default 4:256:524288:90 4:1024:262144:90
//   8:256:524288:90 8:1024:262144:90: the strong-scaling shapes on 4 and 8 GPUs over NVLink)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/schedule.h"
#include "core/shard.h"
#include "cuda/cuda_backend.h"
#include "batch_timing.h"
#include "device_diff.h"
#include "device_fill.h"

using namespace xattn;

namespace {

constexpr int kQueued = 5, kBatches = 5, kRounds = 3;

// Rank 0 of `world` ranks that never exchange anything: the schedules' no-communication bound asks only
// for the rank and the world.
class NoLinks : public Transport {
 public:
  explicit NoLinks(int world) : world_(world) {}
  int rank() const override { return 0; }
  int world_size() const override { return world_; }
  const char* name() const override { return "none"; }
  Handle post(const std::vector<Exchange>&) override { fail(ErrorCode::Internal, "the no-communication bound sent something"); }
  void wait(Handle) override {}
  void all_reduce_sum_f32(float*, size_t) override { fail(ErrorCode::Internal, "no all-reduce here"); }
  void barrier() override {}
  uint64_t bytes_sent() const override { return 0; }

 private:
  int world_;
};

struct Case {
  int world;
  long long lq_total, lkv_total;
  double link;
};

bool run_case(CudaBackend& be, const Case& c) {
  AttnDims d;
  d.heads = 32; d.kv_heads = 8; d.head_dim = 128; d.dtype = DType::BF16;
  const int64_t lq = shard_of(c.lq_total, c.world, 0).length, lkv = shard_of(c.lkv_total, c.world, 0).length;
  const size_t nq = lq * d.heads * d.head_dim, nk = lkv * d.kv_heads * d.head_dim, ns = d.heads * lq;
  void* q = be.alloc(nq * 2); void* k = be.alloc(nk * 2); void* v = be.alloc(nk * 2); void* dout = be.alloc(nq * 2);
  fill_random_bf16(be, q, nq, 1); fill_random_bf16(be, k, nk, 2); fill_random_bf16(be, v, nk, 3); fill_random_bf16(be, dout, nq, 4);
  NoLinks links(c.world);
  struct Schedule {
    std::string name;
    std::unique_ptr<DistAttention> dist;
    void *o;
    float *lse, *dq, *dk, *dv;
    std::vector<double> fwd, bwd;
  };
  std::vector<Schedule> sched;
  for (int gather : {0, 1}) {
    DistProblem pb;
    pb.dims = d;
    pb.lq_total = c.lq_total;
    pb.lkv_total = c.lkv_total;
    pb.comm = false;
    pb.link_gbps = c.link;
    pb.gather = gather;
    Schedule s{gather ? "gathered" : "ring", std::make_unique<DistAttention>(be, links, pb), be.alloc(nq * 2),
               static_cast<float*>(be.alloc(ns * 4)), static_cast<float*>(be.alloc(nq * 4)), static_cast<float*>(be.alloc(nk * 4)),
               static_cast<float*>(be.alloc(nk * 4)), {}, {}};
    sched.push_back(std::move(s));
  }
  const auto fwd = [&](Schedule& s) { s.dist->forward(Algorithm::LvXAttn, {q, k, v, nullptr, s.o, s.lse}); };
  const auto bwd = [&](Schedule& s) {
    s.dist->backward(Algorithm::LvXAttn, {q, k, v, s.o, s.lse, dout, nullptr, s.dq, s.dk, s.dv});
  };
  for (Schedule& s : sched) fwd(s), bwd(s);
  const Schedule &r = sched[0], &g = sched[1];
  const double e = std::max({relative_diff(be, g.o, r.o, nq, true), relative_diff(be, g.lse, r.lse, ns, false),
                             relative_diff(be, g.dq, r.dq, nq, false), relative_diff(be, g.dk, r.dk, nk, false),
                             relative_diff(be, g.dv, r.dv, nk, false)});
  const std::string shape = "P" + std::to_string(c.world) + " " + std::to_string(c.lq_total) + "x" + std::to_string(c.lkv_total) +
                            " (a rank: " + std::to_string(lq) + "x" + std::to_string(lkv) + ")";
  std::printf("{\"check\":\"%s\",\"max_rel_diff\":%.2e}\n", shape.c_str(), e);
  for (int round = 0; round < kRounds; ++round)
    for (size_t i = 0; i < sched.size(); ++i) {
      Schedule& s = sched[(i + round) % sched.size()];  // each round starts with the other schedule
      s.fwd.push_back(batch_median_ms(be, kBatches, kQueued, [&] { fwd(s); }));
      s.bwd.push_back(batch_median_ms(be, kBatches, kQueued, [&] { bwd(s); }));
    }
  for (const Schedule& s : sched)
    for (const auto& [pass, ms] : {std::make_pair("forward", &s.fwd), std::make_pair("backward", &s.bwd)}) {
      std::string rounds;
      for (double m : *ms) rounds += (rounds.empty() ? "" : ",") + std::to_string(m);
      std::printf("{\"device\":\"%s\",\"shape\":\"%s\",\"pass\":\"%s\",\"schedule\":\"%s\",\"ms\":%.4f,\"rounds\":[%s]}\n",
                  be.device_name().c_str(), shape.c_str(), pass, s.name.c_str(), median(*ms), rounds.c_str());
    }
  for (Schedule& s : sched) {
    s.dist.reset();
    for (void* x : {s.o, static_cast<void*>(s.lse), static_cast<void*>(s.dq), static_cast<void*>(s.dk), static_cast<void*>(s.dv)}) be.free(x);
  }
  for (void* x : {q, k, v, dout}) be.free(x);
  return e < 2e-2;
}

int run(int argc, char** argv) {
  std::vector<Case> cases;
  for (int i = 1; i < argc; ++i) {
    Case c{};
    if (std::sscanf(argv[i], "%d:%lld:%lld:%lf", &c.world, &c.lq_total, &c.lkv_total, &c.link) != 4 || c.world < 2 ||
        c.lq_total < c.world || c.lkv_total < c.world) {
      std::fprintf(stderr, "bad case '%s': expected P:lq_total:lkv_total:link (P >= 2, at least a row a rank)\n", argv[i]);
      return 2;
    }
    cases.push_back(c);
  }
  if (cases.empty()) cases = {{4, 256, 524288, 90}, {4, 1024, 262144, 90}, {8, 256, 524288, 90}, {8, 1024, 262144, 90}};
  CudaBackend be(0);
  bool ok = true;
  for (const Case& c : cases) ok = run_case(be, c) && ok;
  if (!ok) std::fprintf(stderr, "xattn_gather_bench: the gathered schedule disagrees with the ring's\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // no GPU, out of memory, a failed launch: say so, no abort
    std::fprintf(stderr, "xattn_gather_bench: %s\n", e.what());
    return 1;
  }
}
