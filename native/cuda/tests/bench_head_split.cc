// Can the stacked backward hand dQ home head group by head group? Sending a group's dQ while the next
// group computes (NOTES, "What remains": the head-by-head dQ hop) needs each group complete before the
// launch ends. This times, on one GPU, a rank's stacked block (default 256 text rows against 64K visual
// rows, H32/Hkv8 d128 bf16, sm90 backward, dK/dV written), queued:
//   whole         one launch over every KV head
//   seqG          G launches on the compute stream, each over Hkv/G KV heads
//   streamsG      the same G launches, each on a stream of its own (forked from the compute stream, joined)
//   +wire         after each launch a high-priority side stream gathers that group's dQ of the visiting
//                 rows (the first half) and packs it to float16 (partial_to_wire), as a hop would
// Conditions take turns over rounds (the card's heat, see bench_interference.cc). One JSON line per
// condition: ms per step (median over rounds of the median of batches of queued steps) and each round's.
// First it checks that G launches give the whole launch's dQ, dK and dV.
// Usage: xattn_head_split_bench [H:Hkv:D:lq:lkv (default 32:8:128:256:65536)]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "batch_timing.h"
#include "device_diff.h"
#include "device_fill.h"

using namespace xattn;

namespace {

constexpr int kQueued = 10, kBatches = 5, kRounds = 3;

struct Problem {
  cuda::AttnGeom g;
  cuda::BwdArgs a{};
  size_t nq = 0, nk = 0;
};

class Runner {
 public:
  Runner(CudaBackend& be, const Problem& p) : be_(be), p_(p) {
    int least = 0, greatest = 0;
    XATTN_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    XATTN_CUDA_CHECK(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatest));
    for (int i = 0; i < p.g.kv_heads; ++i) {
      cudaStream_t s;
      XATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      streams_.push_back(s);
      cudaEvent_t e;
      XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      done_.push_back(e);
    }
    XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&side_done_, cudaEventDisableTiming));
    const size_t rows = p.g.lq / 2, row = static_cast<size_t>(p.g.heads) * p.g.head_dim;
    gathered_ = static_cast<float*>(be.alloc(rows * row * 4));
    wire_ = static_cast<uint16_t*>(be.alloc(rows * row * 2));
    scale_ = static_cast<float*>(be.alloc(rows * p.g.heads * 4));
  }

  // One step: G launches (G = 1: whole), on `streams` or the compute stream, with the wire work or not.
  void step(int groups, bool streams, bool wire) {
    const cudaStream_t main = be_.stream();
    const int per = p_.g.kv_heads / groups;
    if (streams) XATTN_CUDA_CHECK(cudaEventRecord(fork_, main));
    for (int k = 0; k < groups; ++k) {
      cuda::AttnGeom g = p_.g;
      g.kv_head_begin = k * per;
      g.kv_head_count = groups > 1 ? per : 0;
      const cudaStream_t s = streams ? streams_[k] : main;
      if (streams) XATTN_CUDA_CHECK(cudaStreamWaitEvent(s, fork_, 0));
      cuda::sm90_attn_bwd(DType::BF16, g, p_.a, s);
      XATTN_CUDA_CHECK(cudaEventRecord(done_[k], s));
      if (wire) pack_group(k * per, per);
    }
    if (streams)
      for (int k = 0; k < groups; ++k) XATTN_CUDA_CHECK(cudaStreamWaitEvent(main, done_[k], 0));
    if (wire) XATTN_CUDA_CHECK(cudaStreamWaitEvent(main, side_done_, 0));
  }

  ~Runner() {
    for (auto s : streams_) cudaStreamDestroy(s);
    for (auto e : done_) cudaEventDestroy(e);
    cudaStreamDestroy(side_);
    cudaEventDestroy(fork_);
    cudaEventDestroy(side_done_);
    be_.free(gathered_);
    be_.free(wire_);
    be_.free(scale_);
  }

 private:
  // The dQ of KV heads [h0, h0 + n) for the visiting rows, gathered and packed on the side stream once the
  // launch that finished them (done_[h0 / n]) is done.
  void pack_group(int h0, int n) {
    const cuda::AttnGeom& g = p_.g;
    const size_t rows = g.lq / 2, width = static_cast<size_t>(n) * g.group * g.head_dim * 4;
    const size_t pitch = static_cast<size_t>(g.heads) * g.head_dim * 4;
    XATTN_CUDA_CHECK(cudaStreamWaitEvent(side_, done_[h0 / n], 0));
    const char* src = reinterpret_cast<const char*>(p_.a.dq) + static_cast<size_t>(h0) * g.group * g.head_dim * 4;
    XATTN_CUDA_CHECK(cudaMemcpy2DAsync(gathered_, width, src, pitch, width, rows, cudaMemcpyDeviceToDevice, side_));
    cuda::partial_to_wire(1, static_cast<int64_t>(rows), n * g.group, g.head_dim, gathered_, wire_, scale_, side_);
    XATTN_CUDA_CHECK(cudaEventRecord(side_done_, side_));
  }

  CudaBackend& be_;
  const Problem& p_;
  cudaStream_t side_;
  std::vector<cudaStream_t> streams_;
  std::vector<cudaEvent_t> done_;
  cudaEvent_t fork_, side_done_;
  float* gathered_;
  uint16_t* wire_;
  float* scale_;
};

int run(int argc, char** argv) {
  long long H = 32, Hkv = 8, D = 128, lq = 256, lkv = 65536;
  if (argc > 1 && (std::sscanf(argv[1], "%lld:%lld:%lld:%lld:%lld", &H, &Hkv, &D, &lq, &lkv) != 5 || H % Hkv || lq < 2)) {
    std::fprintf(stderr, "bad shape '%s': expected H:Hkv:D:lq:lkv (Hkv dividing H, lq >= 2)\n", argv[1]);
    return 2;
  }
  CudaBackend be(0);
  if (!be.sm90()) {
    std::fprintf(stderr, "xattn_head_split_bench: needs the sm90 kernels (a Hopper GPU)\n");
    return 1;
  }
  AttnDims d;
  d.heads = H; d.kv_heads = Hkv; d.head_dim = D; d.dtype = DType::BF16;
  Problem p;
  p.nq = lq * H * D;
  p.nk = lkv * Hkv * D;
  const size_t ns = H * lq;
  void* q = be.alloc(p.nq * 2); void* k = be.alloc(p.nk * 2); void* v = be.alloc(p.nk * 2);
  void* dout = be.alloc(p.nq * 2); void* o16 = be.alloc(p.nq * 2);
  float* o = static_cast<float*>(be.alloc(p.nq * 4)); float* lse = static_cast<float*>(be.alloc(ns * 4));
  float* drow = static_cast<float*>(be.alloc(ns * 4));
  float* dq = static_cast<float*>(be.alloc(p.nq * 4)); float* dk = static_cast<float*>(be.alloc(p.nk * 4));
  float* dv = static_cast<float*>(be.alloc(p.nk * 4));
  float* ref = static_cast<float*>(be.alloc((p.nq + 2 * p.nk) * 4));
  fill_random_bf16(be, q, p.nq, 1); fill_random_bf16(be, k, p.nk, 2); fill_random_bf16(be, v, p.nk, 3); fill_random_bf16(be, dout, p.nq, 4);
  const AttnBlock blk{lq, lkv, 0, nullptr};
  be.attn_fwd(d, blk, AttnFwdIO{q, k, v, o, lse});
  be.cast_from_f32(DType::BF16, o, o16, p.nq);
  be.row_dot(d, lq, dout, o16, drow);
  p.g = cuda::attn_geom(d, blk);
  p.a = cuda::BwdArgs{q, k, v, dout, lse, drow, dq, dk, dv};
  p.a.dkv_overwrite = true;
  Runner runner(be, p);
  std::vector<int> splits;
  for (int G : {2, 4, 8})
    if (Hkv % G == 0) splits.push_back(G);

  // The split launches against the whole one (dQ adds in no fixed order: compared relatively).
  be.zero(dq, p.nq * 4);
  runner.step(1, false, false);
  be.copy(ref, dq, p.nq * 4); be.copy(ref + p.nq, dk, p.nk * 4); be.copy(ref + p.nq + p.nk, dv, p.nk * 4);
  bool ok = true;
  for (int G : splits)
    for (bool streams : {false, true}) {
      be.zero(dq, p.nq * 4); be.zero(dk, p.nk * 4); be.zero(dv, p.nk * 4);
      runner.step(G, streams, false);
      const double e = std::max({relative_diff(be, dq, ref, p.nq), relative_diff(be, dk, ref + p.nq, p.nk),
                                 relative_diff(be, dv, ref + p.nq + p.nk, p.nk)});
      std::printf("{\"check\":\"%s%d\",\"max_rel_diff\":%.2e}\n", streams ? "streams" : "seq", G, e);
      ok = ok && e < 1e-4;
    }
  if (!ok) {
    std::fprintf(stderr, "xattn_head_split_bench: split launches disagree with the whole launch\n");
    return 1;
  }

  struct Condition { std::string name; int groups; bool streams, wire; std::vector<double> ms; };
  std::vector<Condition> conds = {{"whole", 1, false, false, {}}, {"whole+wire", 1, false, true, {}}};
  for (int G : splits) {
    conds.push_back({"seq" + std::to_string(G), G, false, false, {}});
    conds.push_back({"streams" + std::to_string(G), G, true, false, {}});
    conds.push_back({"seq" + std::to_string(G) + "+wire", G, false, true, {}});
  }
  for (int r = 0; r < kRounds; ++r)
    for (size_t i = 0; i < conds.size(); ++i) {
      Condition& c = conds[(i + r) % conds.size()];  // each round starts one condition later
      c.ms.push_back(batch_median_ms(be, kBatches, kQueued, [&] { runner.step(c.groups, c.streams, c.wire); }));
    }
  for (const Condition& c : conds) {
    std::string rounds;
    for (double m : c.ms) rounds += (rounds.empty() ? "" : ",") + std::to_string(m);
    std::printf("{\"device\":\"%s\",\"shape\":\"H%lld/Hkv%lld d%lld %lldx%lld\",\"condition\":\"%s\",\"ms\":%.4f,\"rounds\":[%s]}\n",
                be.device_name().c_str(), H, Hkv, D, lq, lkv, c.name.c_str(), median(c.ms), rounds.c_str());
  }
  for (void* x : {q, k, v, dout, o16, static_cast<void*>(o), static_cast<void*>(lse), static_cast<void*>(drow),
                  static_cast<void*>(dq), static_cast<void*>(dk), static_cast<void*>(dv), static_cast<void*>(ref)})
    be.free(x);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // no GPU, out of memory, a failed launch: say so, no abort
    std::fprintf(stderr, "xattn_head_split_bench: %s\n", e.what());
    return 1;
  }
}
