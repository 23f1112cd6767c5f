// xattn::Transport over NCCL (loaded at run time). Transfers run on a dedicated high-priority stream,
// ordered against the backend's compute stream with events; a watchdog thread aborts the communicator
// when a transfer outlives the timeout or NCCL reports an async error, so no wait ever hangs.
// Point-to-point transfers to peers on the same host with peer access go through copy engines instead
// (CopyEngineLinks), which leave every SM to compute; collectives stay with NCCL.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/transport.h"
#include "cuda/ce_links.h"
#include "cuda/cuda_backend.h"
#include "cuda/nccl_api.h"

namespace xattn {

class NcclTransport final : public Transport {
 public:
  NcclTransport(const std::vector<uint8_t>& unique_id, int rank, int world, CudaBackend& backend, int timeout_ms);
  ~NcclTransport() override;
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  const char* name() const override { return "nccl"; }
  Handle post(const std::vector<Exchange>& batch) override;
  void wait(Handle h) override;
  void mark_send_ready() override;
  void all_reduce_sum_f32(float* data, size_t n) override;
  bool can_post_all_reduce() const override { return true; }
  Handle post_all_reduce_sum_f32(const std::vector<std::pair<float*, size_t>>& buffers) override;
  void barrier() override;
  uint64_t bytes_sent() const override { return bytes_sent_.load(); }
  void set_transfer_need(TransferNeed need) override { need_ = need; }
  int transfer_sms() const override;
  std::string describe() const override;

  cudaStream_t comm_stream() const { return comm_stream_; }
  const std::string& library() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    Handle id;
    cudaEvent_t done;
    Clock::time_point posted;
    bool waited;
    bool complete;
  };

  void join(const nccl::UniqueId& id);
  void shutdown();  // the destructor's work, also run when the constructor fails after starting the watchdog
  void link_copy_engines();                 // collective: sets up links_ and checks them with one exchange
  void gather(const void* mine, size_t bytes, void* all);  // all-gather of host bytes over NCCL
  void start_on_comm_stream();             // the comm stream waits for compute enqueued so far (or marked)
  Handle finish_on_comm_stream(bool waited);  // records the done event, tracks it for the watchdog
  void host_wait(Handle h);                // polls until the batch completes (or fails)
  void throw_if_failed() const;
  void fail_and_abort(ErrorCode code, const std::string& msg);
  void watchdog();

  CudaBackend& backend_;
  int rank_, world_, timeout_ms_;
  nccl::Comm comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  bool ready_marked_ = false;  // ready_ was recorded by mark_send_ready() (until the next wait)
  float* scratch_ = nullptr;  // 64 floats for warm-up and barrier
  int hook_id_ = 0;

  mutable std::mutex mu_;  // guards pending_, free_events_, failure text
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  Handle next_handle_ = 1;
  std::atomic<bool> failed_{false};
  ErrorCode fail_code_ = ErrorCode::Nccl;
  std::string fail_msg_;
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::chrono::steady_clock::rep> posting_since_{0};  // when the post in progress began; 0: none
  std::thread watchdog_;
  std::unique_ptr<CopyEngineLinks> links_;  // null: every transfer goes through NCCL
  TransferNeed need_ = TransferNeed::ComputeBeside;  // PeakBandwidth: NCCL even where links_ has a peer
  const bool nccl_p2p_disabled_ = CopyEngineLinks::nccl_p2p_disabled();
};

}  // namespace xattn
