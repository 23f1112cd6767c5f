// Helpers shared by the schedules (schedule.cc, schedule_lv.cc, schedule_lv_bwd.cc); not part of the public interface.
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
  size_t q, kv, o32, o16, kv32, lse, mask;
  explicit RowBytes(const AttnDims& d)
      : q(d.batch * d.heads * d.head_dim * dtype_size(d.dtype)),
        kv(d.batch * d.kv_heads * d.head_dim * dtype_size(d.dtype)),
        o32(d.batch * d.heads * d.head_dim * 4),
        o16(d.batch * d.heads * d.head_dim * 2),
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

// For the lifetime of a schedule call: tells the transport what the call's transfers need, and the
// backend how many SMs its transfers hold beside its kernels (so its grids leave room for them).
class TransferScope {
 public:
  TransferScope(Backend& be, Transport& tr, TransferNeed need, bool comm) : be_(be), tr_(tr) {
    tr_.set_transfer_need(need);
    sms_ = comm && tr_.world_size() > 1 ? tr_.transfer_sms() : 0;
    if (sms_) be_.set_transfer_sms(sms_);
  }
  ~TransferScope() {
    if (sms_) be_.set_transfer_sms(0);
    tr_.set_transfer_need(TransferNeed::ComputeBeside);
  }
  TransferScope(const TransferScope&) = delete;
  TransferScope& operator=(const TransferScope&) = delete;

 private:
  Backend& be_;
  Transport& tr_;
  int sms_;
};

}  // namespace sched

}  // namespace xattn
