// Helpers shared by the schedules (schedule.cc, schedule_lv.cc); not part of the public interface.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "core/schedule.h"

namespace xattn {

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

namespace sched {

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

inline int mod(int a, int p) { return ((a % p) + p) % p; }

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

}  // namespace sched

}  // namespace xattn
