#include "core/link_probe.h"

#include <algorithm>
#include <chrono>

namespace xattn {

ExchangeTimes time_ring_exchange(Backend& be, Transport& tr, size_t bytes, int iters) {
  const int P = tr.world_size(), r = tr.rank();
  if (P == 1 || iters < 1) return {};
  void* a = be.alloc(bytes);
  void* b = be.alloc(bytes);
  const auto once = [&] {
    tr.wait(tr.post({{a, bytes, (r + 1) % P, b, bytes, (r + P - 1) % P}}));
    be.synchronize();
  };
  once();  // connection set-up, buffer registration
  ExchangeTimes t;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    once();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.mean += s / iters;
    t.best = i == 0 ? s : std::min(t.best, s);
  }
  be.free(a);
  be.free(b);
  return t;
}

namespace {

// Every rank's value summed and divided: the ranks agree on one number.
double agreed(Backend& be, Transport& tr, double value) {
  float v = static_cast<float>(value);
  float* dev = static_cast<float*>(be.alloc(sizeof(float)));
  be.from_host(dev, &v, sizeof(float));
  tr.all_reduce_sum_f32(dev, 1);
  be.to_host(&v, dev, sizeof(float));
  be.free(dev);
  return v / tr.world_size();
}

double gbps_at(Backend& be, Transport& tr, size_t bytes) {
  const double s = time_ring_exchange(be, tr, bytes, 5).best;
  return agreed(be, tr, s > 0 ? bytes / s / 1e9 : 0.0);
}

}  // namespace

// 4 MiB first (2 ms at 2 GB/s); where that crossed in well under a millisecond, 64 MiB, so a fast link
// (NVLink: 4 MiB in 20 us, less than the host's post and wait) is timed by its bandwidth, not its
// latency. Both decisions use the agreed value, so every rank runs the same exchanges.
double probe_link_gbps(Backend& be, Transport& tr) {
  if (tr.world_size() == 1) return 0.0;
  constexpr size_t kSmall = 4 << 20, kLarge = 64 << 20;
  const double small = gbps_at(be, tr, kSmall);
  return small * 1e9 > kLarge / 5e-3 ? gbps_at(be, tr, kLarge) : small;
}

}  // namespace xattn
