// Multi-GPU NCCL transport check (no Node): one process per GPU (forked_ranks.h) checks a ring exchange
// (odd and large sizes), a two-way batch, ordering against the compute stream, all-reduce and barrier,
// measures ring bandwidth and what a hop costs per message, and finally kills rank 1 to check that rank 0
// ends in PeerLost/Timeout instead of hanging. Usage: xattn_nccl_check [world=2]

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_factory.h"
#include "forked_ranks.h"

using namespace xattn;
using Clock = std::chrono::steady_clock;

namespace {

int g_rank = 0;
#define CHECK(cond, msg)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::printf("rank %d: FAIL %s\n", g_rank, msg);                            \
      std::fflush(stdout);                                                       \
      std::_Exit(1);                                                             \
    }                                                                            \
  } while (0)

uint8_t pattern(int rank, size_t i) { return static_cast<uint8_t>(rank * 31 + i * 7 + (i >> 9)); }

// One batch with both directions: send to next and prev, receive from prev and next.
void ring_check(CudaBackend& be, Transport& tr, size_t bytes) {
  const int w = tr.world_size(), next = (g_rank + 1) % w, prev = (g_rank + w - 1) % w;
  std::vector<uint8_t> h(bytes);
  for (size_t i = 0; i < bytes; ++i) h[i] = pattern(g_rank, i);
  void* s = be.alloc(bytes);
  void* r1 = be.alloc(bytes);
  void* r2 = be.alloc(bytes);
  be.from_host(s, h.data(), bytes);
  be.zero(r1, bytes);
  be.zero(r2, bytes);
  tr.wait(tr.post({Exchange{s, bytes, next, r1, bytes, prev}, Exchange{s, bytes, prev, r2, bytes, next}}));
  size_t bad = 0;
  be.to_host(h.data(), r1, bytes);
  for (size_t i = 0; i < bytes; ++i) bad += h[i] != pattern(prev, i);
  be.to_host(h.data(), r2, bytes);
  for (size_t i = 0; i < bytes; ++i) bad += h[i] != pattern(next, i);
  std::printf("rank %d: two-way ring exchange %zu bytes: %zu wrong  %s\n", g_rank, bytes, bad, bad ? "FAIL" : "ok");
  CHECK(bad == 0, "ring exchange");
  be.free(s);
  be.free(r1);
  be.free(r2);
}

// Compute writes the send buffer right before post, and reads the receive buffer right after wait,
// with no host synchronisation in between: the events must order both.
void ordering_check(CudaBackend& be, Transport& tr) {
  const int w = tr.world_size(), next = (g_rank + 1) % w, prev = (g_rank + w - 1) % w;
  const size_t n = 8 << 20;
  float* s = static_cast<float*>(be.alloc(n * 4));
  float* r = static_cast<float*>(be.alloc(n * 4));
  float* out = static_cast<float*>(be.alloc(n * 4));
  for (int round = 0; round < 5; ++round) {
    be.fill_f32(s, n, 100.f * g_rank + round);
    be.fill_f32(r, n, -1.f);
    tr.wait(tr.post({Exchange{s, n * 4, next, r, n * 4, prev}}));
    be.copy(out, r, n * 4);
  }
  std::vector<float> h(n);
  be.to_host(h.data(), out, n * 4);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += h[i] != 100.f * prev + 4;
  std::printf("rank %d: compute/comm ordering: %zu wrong  %s\n", g_rank, bad, bad ? "FAIL" : "ok");
  CHECK(bad == 0, "ordering");
  be.free(s);
  be.free(r);
  be.free(out);
}

// Hop latency as a schedule sees it: batches of one exchange per message (sizes in bytes) queued back to
// back, each waiting for the previous on the compute stream, timed on that stream. Separate messages of one
// hop (a partial and its LSE, say) each pay the transport's fixed cost; this prints what that is.
void hop_latency(CudaBackend& be, Transport& tr) {
  const int w = tr.world_size(), next = (g_rank + 1) % w, prev = (g_rank + w - 1) % w;
  const std::vector<std::vector<size_t>> hops = {{16 << 10}, {2 << 20}, {2 << 20, 16 << 10}, {2 << 20, 16 << 10, 16 << 10},
                                                 {(2 << 20) + (32 << 10)}, {8 << 20}, {8 << 20, 64 << 10}};
  void* s = be.alloc(16 << 20);
  void* r = be.alloc(16 << 20);
  cudaStream_t st = be.stream();
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  for (const auto& sizes : hops) {
    std::vector<Exchange> batch;
    size_t off = 0;
    for (size_t n : sizes) {
      batch.push_back({static_cast<char*>(s) + off, n, next, static_cast<char*>(r) + off, n, prev});
      off += n;
    }
    const int reps = 50;
    for (int i = 0; i < 5; ++i) tr.wait(tr.post(batch));
    be.synchronize();
    tr.barrier();
    cudaEventRecord(t0, st);
    for (int i = 0; i < reps; ++i) tr.wait(tr.post(batch));
    cudaEventRecord(t1, st);
    cudaEventSynchronize(t1);
    float ms = 0;
    cudaEventElapsedTime(&ms, t0, t1);
    std::string label;
    for (size_t n : sizes) label += (label.empty() ? "" : "+") + std::to_string(n >> 10) + "K";
    if (g_rank == 0) std::printf("{\"hop\":\"%s\",\"messages\":%zu,\"us_per_hop\":%.1f}\n", label.c_str(), sizes.size(), ms * 1e3 / reps);
    tr.barrier();
  }
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  be.free(s);
  be.free(r);
}

}  // namespace

int rank_main(int rank, int world, const std::vector<uint8_t>& id) {
  g_rank = rank;
  const int devices = cuda_device_count();
  CHECK(devices >= world, "needs one GPU per rank");
  CudaBackend be(rank);
  auto t0 = Clock::now();
  auto tr = make_nccl_transport(id, rank, world, be, 5000);
  std::printf("rank %d: joined on %s in %.0f ms; transfers: %s\n", rank, be.device_name().c_str(),
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), tr->describe().c_str());
  ring_check(be, *tr, 1001);
  ring_check(be, *tr, 16 << 20);
  ordering_check(be, *tr);

  const size_t n = 1 << 20;
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = (rank + 1) * 0.5f + static_cast<float>(i % 7);
  float* d = static_cast<float*>(be.alloc(n * 4));
  be.from_host(d, h.data(), n * 4);
  tr->all_reduce_sum_f32(d, n);
  be.to_host(h.data(), d, n * 4);
  size_t bad = 0;
  const float base = 0.5f * world * (world + 1) / 2.f;
  for (size_t i = 0; i < n; ++i) bad += std::fabs(h[i] - (base + world * static_cast<float>(i % 7))) > 1e-4f;
  std::printf("rank %d: all_reduce_sum_f32: %zu wrong  %s\n", rank, bad, bad ? "FAIL" : "ok");
  CHECK(bad == 0, "all-reduce");
  tr->barrier();

  // Ring bandwidth: each rank sends 64 MiB to next while receiving 64 MiB from prev.
  const size_t bytes = 64 << 20;
  void* s = be.alloc(bytes);
  void* r = be.alloc(bytes);
  const int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  auto step = [&] { tr->wait(tr->post({Exchange{s, bytes, next, r, bytes, prev}})); };
  for (int i = 0; i < 3; ++i) step();
  be.synchronize();
  tr->barrier();
  const int reps = 20;
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) step();
  be.synchronize();
  const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
  if (rank == 0)
    std::printf("{\"device\":\"%s\",\"world\":%d,\"ring_exchange_bytes\":%zu,\"ms_per_step\":%.3f,\"gbps_per_direction\":%.1f}\n",
                be.device_name().c_str(), world, bytes, sec / reps * 1e3, bytes * reps / sec / 1e9);
  tr->barrier();

  hop_latency(be, *tr);

  // Dead peer: rank 1 vanishes; rank 0 must fail with PeerLost/Timeout, not hang.
  if (rank == 1) {
    std::printf("rank 1: exiting abruptly to simulate a crash\n");
    std::fflush(stdout);
    std::_Exit(0);
  }
  if (rank == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    t0 = Clock::now();
    bool caught = false;
    try {
      tr->wait(tr->post({Exchange{s, bytes, 1, r, bytes, 1}}));
      be.synchronize();
    } catch (const XattnError& e) {
      // A CUDA fault from writing into the dead peer's memory also ends the wait (reported as such).
      caught = e.code() == ErrorCode::PeerLost || e.code() == ErrorCode::Timeout || e.code() == ErrorCode::Cuda;
      std::printf("rank 0: dead peer -> %s: %s\n", error_code_name(e.code()), e.what());
    }
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("rank 0: dead peer detected after %.1f s  %s\n", waited, caught ? "ok" : "FAIL");
    CHECK(caught, "dead peer must raise PeerLost/Timeout");
  }
  std::printf("rank %d: all checks passed\n", rank);
  return 0;
}

int main(int argc, char** argv) { return forked::run_ranks(argc > 1 ? std::atoi(argv[1]) : 2, rank_main); }
