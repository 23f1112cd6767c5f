// Can a kernel that fills every SM wait, inside itself, for bytes still on the wire? The plan to hide the
// stacked backward's first hop (native/cuda/NOTES.md, What remains, item 1) has its launch start before the
// visiting rows arrive and poll a flag that the transfer's stream writes behind the receive. That only works
// if nothing between the receive and the flag needs an SM: the polling CTAs hold them all. Two ranks
// (forked_ranks.h) run trials of:
//   compute stream: a small copy (the own inputs' bundle), then the post of a `bytes` exchange (the transport
//                   waits for that copy before sending), then `between`, then the flag written
//                   (cuStreamWriteValue32) once the receive is done;
//   a second stream: the polling kernel, released by the same copy, so that it and the transfer's kernels
//                   (NCCL) become runnable together. Every CTA polls the flag at once (the worst case) and
//                   gives up after a timeout, counted, so a starved transfer shows instead of hanging.
// `between` is one of: nothing; a strided device-to-device copy (cudaMemcpy2DAsync, as the stacking copies
// would be); a small kernel (the control: it needs an SM, so it waits for the timeouts).
// One JSON line per rank and case: trials, trials with a timeout, median ms a trial.
// Usage: xattn_poll_probe [bytes (1 MiB)] [trials (30)]   (NCCL_P2P_DISABLE=1 XATTN_COPY_ENGINE=0: NCCL's kernels)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_factory.h"
#include "cuda/stream_memops.h"
#include "forked_ranks.h"

using namespace xattn;

namespace {

constexpr int kThreads = 1024;        // two CTAs of 1024 threads take all 2048 thread slots of an SM
constexpr int kWaves = 4;             // as the backward's 4 waves at 256x128K
constexpr uint64_t kTimeoutNs = 200'000'000;
constexpr uint64_t kWorkNs = 20'000;  // each CTA's work once the flag is up

__device__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void __launch_bounds__(kThreads, 2) poll_kernel(const volatile uint32_t* flag, uint32_t value, unsigned* timeouts) {
  if (threadIdx.x == 0) {
    const uint64_t t0 = now_ns();
    while (static_cast<int32_t>(*flag - value) < 0) {
      if (now_ns() - t0 > kTimeoutNs) {
        atomicAdd(timeouts, 1u);
        break;
      }
      __nanosleep(500);
    }
    const uint64_t t1 = now_ns();
    while (now_ns() - t1 < kWorkNs) {
    }
  }
  __syncthreads();
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(ErrorCode::Cuda, std::string(what) + ": " + cudaGetErrorString(e));
}

int rank_main(int rank, int world, const std::vector<uint8_t>& id, size_t bytes, int trials) {
  try {
    CudaBackend be(rank);
    auto tr = make_nccl_transport(id, rank, world, be, 20000);
    const cuda::StreamMemOps& memops = cuda::stream_memops();
    require(static_cast<bool>(memops), ErrorCode::Cuda, "stream memory operations unavailable");
    const int peer = (rank + 1) % world;
    void* send = be.alloc(bytes);
    void* recv = be.alloc(bytes);
    void* bundle = be.alloc(bytes);
    void* strided = be.alloc(2 * bytes);  // the received rows into every other row of 4 KiB, as stacking would
    auto* small = static_cast<float*>(be.alloc(4096));
    uint32_t* flag = nullptr;  // plain cudaMalloc: stream memory operations refuse pool (cudaMallocAsync) memory
    check(cudaMalloc(&flag, 4), "cudaMalloc");
    check(cudaMemset(flag, 0, 4), "cudaMemset");
    auto* timeouts = static_cast<unsigned*>(be.alloc(4));
    be.zero(send, bytes);
    be.zero(small, 4096);
    cudaStream_t poll_stream;
    check(cudaStreamCreateWithFlags(&poll_stream, cudaStreamNonBlocking), "stream");
    cudaEvent_t released;
    check(cudaEventCreateWithFlags(&released, cudaEventDisableTiming), "event");
    const int grid = kWaves * 2 * be.sm_count();
    uint32_t value = 0;
    const std::string transport = tr->describe();
    for (const std::string between : {"nothing", "copy_2d", "kernel"}) {
      const int n = between == "kernel" ? std::min(trials, 3) : trials;
      std::vector<double> ms;
      int starved = 0;
      for (int t = 0; t < n; ++t) {
        be.zero(timeouts, 4);
        be.synchronize();
        tr->barrier();
        const auto t0 = std::chrono::steady_clock::now();
        ++value;
        be.copy(bundle, send, 64 << 10);
        check(cudaEventRecord(released, be.stream()), "record");
        const Transport::Handle h = tr->post({Exchange{send, bytes, peer, recv, bytes, peer}});
        check(cudaStreamWaitEvent(poll_stream, released, 0), "wait");
        poll_kernel<<<grid, kThreads, 0, poll_stream>>>(flag, value, timeouts);
        check(cudaGetLastError(), "poll_kernel");
        tr->wait(h);
        if (between == "copy_2d") be.copy_2d(strided, 8192, recv, 4096, 4096, bytes / 4096);
        if (between == "kernel") be.add_f32(small, small, 1024);
        require(memops.write(be.stream(), flag, value) == 0, ErrorCode::Cuda, "cuStreamWriteValue32 failed");
        check(cudaStreamSynchronize(poll_stream), "poll stream");
        be.synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        unsigned out = 0;
        be.to_host(&out, timeouts, 4);
        starved += out > 0;
      }
      std::sort(ms.begin(), ms.end());
      std::printf("{\"rank\":%d,\"transport\":\"%s\",\"between\":\"%s\",\"trials\":%d,\"starved\":%d,\"median_ms\":%.3f,\"grid\":%d}\n",
                  rank, transport.c_str(), between.c_str(), n, starved, ms[ms.size() / 2], grid);
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const size_t bytes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (size_t{1} << 20);
  const int trials = argc > 2 ? std::atoi(argv[2]) : 30;
  return forked::run_ranks(2, [&](int rank, int world, const std::vector<uint8_t>& id) {
    return rank_main(rank, world, id, bytes, trials);
  });
}
