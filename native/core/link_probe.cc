#include "core/link_probe.h"

#include <chrono>

namespace xattn {

double time_ring_exchange(Backend& be, Transport& tr, size_t bytes, int iters) {
  const int P = tr.world_size(), r = tr.rank();
  if (P == 1) return 0.0;
  void* a = be.alloc(bytes);
  void* b = be.alloc(bytes);
  const auto once = [&] {
    tr.wait(tr.post({{a, bytes, (r + 1) % P, b, bytes, (r + P - 1) % P}}));
    be.synchronize();
  };
  once();  // connection set-up, buffer registration
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) once();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
  be.free(a);
  be.free(b);
  return s;
}

double probe_link_gbps(Backend& be, Transport& tr) {
  if (tr.world_size() == 1) return 0.0;
  constexpr size_t kBytes = 4 << 20;  // long enough to see bandwidth, not latency; 2 ms at 2 GB/s
  const double s = time_ring_exchange(be, tr, kBytes, 3);
  float gbps = s > 0 ? static_cast<float>(kBytes / s / 1e9) : 0.f;
  float* dev = static_cast<float*>(be.alloc(sizeof(float)));
  be.from_host(dev, &gbps, sizeof(float));
  tr.all_reduce_sum_f32(dev, 1);  // ranks agree, since the chosen pipelining must match on both ends
  be.to_host(&gbps, dev, sizeof(float));
  be.free(dev);
  return gbps / tr.world_size();
}

}  // namespace xattn
