// Why do kernels run slower inside an LV-XAttn step than in the no-communication bound? Session 18's traces
// had the same kernels 1-3 % slower there (native/cuda/NOTES.md). Two ranks (forked_ranks.h) time one
// forward and one backward kernel of a rank's stacked block (two text blocks against the local visual rows),
// queued, under what a step puts around them:
//   alone         random rows, nothing else
//   repeated      the second half of the rows a copy of the first, as the bound's stacked own block is
//   event         an event recorded before each kernel, another stream waiting on it (a send's "ready")
//   transfer      an exchange of `bytes` each way posted right before the kernels, running beside them
//   pending-recv  rank 0 posts a receive before its kernels that rank 1 sends only after its own, so on
//                 rank 0 a copy-engine receive waits on a GPU counter beside the kernels (rank 1 reports
//                 that run as "sends-after")
// One JSON line per rank, kernel and condition: ms per kernel (each round: the median of 5 batches of 20 queued),
// the median over 3 rounds in which the conditions take turns, and each round's figure.
// Usage: xattn_interference_bench [H:Hkv:D:lq:lkv per rank (default 32:8:128:256:65536)] [bytes (2 MiB)]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_factory.h"
#include "batch_timing.h"
#include "device_fill.h"
#include "forked_ranks.h"

using namespace xattn;

namespace {

constexpr int kQueued = 20, kBatches = 5, kRounds = 3;

// One block's backward inputs, consistent with its data (LSE from a forward, D from dO and O).
struct Rows {
  void *q, *dout, *o16;
  float *o, *lse, *drow;
};

int rank_main(int rank, int world, const std::vector<uint8_t>& id, const std::string& shape, size_t bytes) {
  try {
    long long H, Hkv, D, lq, lkv;
    if (std::sscanf(shape.c_str(), "%lld:%lld:%lld:%lld:%lld", &H, &Hkv, &D, &lq, &lkv) != 5 || lq < 2) {
      std::fprintf(stderr, "bad shape '%s': expected H:Hkv:D:lq:lkv with lq >= 2\n", shape.c_str());
      return 2;
    }
    CudaBackend be(rank);
    auto tr = make_nccl_transport(id, rank, world, be, 5000);
    AttnDims d;
    d.batch = 1; d.heads = H; d.kv_heads = Hkv; d.head_dim = D; d.dtype = DType::BF16;
    const size_t nq = lq * H * D, nk = lkv * Hkv * D, ns = H * lq, half = (lq / 2) * H * D;
    const AttnBlock blk{lq, lkv, 0, nullptr};
    void* k = be.alloc(nk * 2); void* v = be.alloc(nk * 2);
    fill_random_bf16(be, k, nk, 11 + rank); fill_random_bf16(be, v, nk, 21 + rank);
    auto* dq = static_cast<float*>(be.alloc(nq * 4));
    auto* dk = static_cast<float*>(be.alloc(nk * 4)); auto* dv = static_cast<float*>(be.alloc(nk * 4));
    const auto make_rows = [&](bool repeated) {
      Rows r{be.alloc(nq * 2), be.alloc(nq * 2), be.alloc(nq * 2), static_cast<float*>(be.alloc(nq * 4)),
             static_cast<float*>(be.alloc(ns * 4)), static_cast<float*>(be.alloc(ns * 4))};
      fill_random_bf16(be, r.q, nq, 31 + rank); fill_random_bf16(be, r.dout, nq, 41 + rank);
      if (repeated) {  // rows [lq/2, 2 lq/2) repeat rows [0, lq/2): [lq, H, D] is row-major
        be.copy(static_cast<char*>(r.q) + half * 2, r.q, half * 2);
        be.copy(static_cast<char*>(r.dout) + half * 2, r.dout, half * 2);
      }
      be.attn_fwd(d, blk, AttnFwdIO{r.q, k, v, r.o, r.lse});
      be.cast_from_f32(DType::BF16, r.o, r.o16, nq);
      be.row_dot(d, lq, r.dout, r.o16, r.drow);
      return r;
    };
    const Rows distinct = make_rows(false), repeated = make_rows(true);
    void* send = be.alloc(bytes);
    void* recv = be.alloc(bytes);
    const int peer = (rank + 1) % world;
    cudaStream_t other;
    cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking);
    std::vector<cudaEvent_t> ready(kQueued);
    for (auto& e : ready) cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    int next_event = 0;

    const auto forward = [&](const Rows& r) { be.attn_fwd(d, blk, AttnFwdIO{r.q, k, v, r.o, r.lse}); };
    const auto backward = [&](const Rows& r) {
      be.attn_bwd(d, blk, AttnBwdIO{r.q, k, v, r.dout, r.lse, r.drow, dq, dk, dv, /*accumulate_dkv=*/false});
    };
    const AroundBatch plain = [](const std::function<void()>& run) { run(); };
    struct Condition {
      const char* name;
      const Rows* rows;
      bool event;
      AroundBatch around;
    };
    const std::vector<Condition> conditions = {
        {"alone", &distinct, false, plain},
        {"repeated", &repeated, false, plain},
        {"event", &distinct, true, plain},
        {"transfer", &distinct, false,
         [&](const std::function<void()>& run) {
           const Transport::Handle h = tr->post({Exchange{send, bytes, peer, recv, bytes, peer}});
           run();
           tr->wait(h);
         }},
        {"pending-recv", &distinct, false,
         [&](const std::function<void()>& run) {
           if (rank == 0) {  // the receive is posted (and waits) before the kernels
             const Transport::Handle h = tr->post({Exchange{nullptr, 0, -1, recv, bytes, peer}});
             run();
             tr->wait(h);
           } else {  // the matching send only once this rank's kernels are done
             run();
             tr->wait(tr->post({Exchange{send, bytes, peer, nullptr, 0, -1}}));
           }
         }}};
    for (const char* kernel_name : {"forward", "backward"}) {
      // Conditions take turns, round after round, so clocks that sink as the card heats fall on all alike.
      std::vector<std::vector<double>> rounds(conditions.size());
      for (int round = 0; round < kRounds; ++round)
        for (size_t i = 0; i < conditions.size(); ++i) {
          const Condition& c = conditions[i];
          const auto body = [&] {
            if (c.event) {
              cudaEvent_t e = ready[next_event++ % kQueued];
              cudaEventRecord(e, be.stream());
              cudaStreamWaitEvent(other, e, 0);
            }
            if (std::string(kernel_name) == "forward") forward(*c.rows);
            else backward(*c.rows);
          };
          rounds[i].push_back(batch_median_ms(be, kBatches, kQueued, body, [&](const std::function<void()>& batch) {
            tr->barrier();
            c.around(batch);
          }));
        }
      for (size_t i = 0; i < conditions.size(); ++i) {
        // On rank 1 "pending-recv" times the peer's side: its kernels, then the send.
        const std::string name = conditions[i].name;
        const std::string cname = name == "pending-recv" && rank != 0 ? "sends-after" : name;
        std::string each;
        for (double ms : rounds[i]) each += (each.empty() ? "" : ",") + std::to_string(ms).substr(0, 6);
        std::printf("{\"device\":\"%s\",\"rank\":%d,\"shape\":\"%s\",\"kernel\":\"%s\",\"condition\":\"%s\",\"bytes\":%zu,"
                    "\"ms\":%.4f,\"rounds\":[%s],\"transport\":\"%s\"}\n",
                    be.device_name().c_str(), rank, shape.c_str(), kernel_name, cname.c_str(), bytes, median(rounds[i]),
                    each.c_str(), tr->describe().c_str());
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::printf("rank %d: %s\n", rank, e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shape = argc > 1 ? argv[1] : "32:8:128:256:65536";
  const size_t bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : (size_t{2} << 20);
  return forked::run_ranks(2, [&](int rank, int world, const std::vector<uint8_t>& id) {
    return rank_main(rank, world, id, shape, bytes);
  });
}
