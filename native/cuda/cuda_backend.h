// The CUDA implementation of xattn::Backend: one device, one compute stream, kernels enqueued in order.
#pragma once
#include <cuda_runtime_api.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "cuda/host_staging.h"

namespace xattn {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) override;
  void zero(void* p, size_t bytes) override;
  void fill_f32(float* p, size_t n, float value) override;
  void add_f32(float* dst, const float* src, size_t n) override;
  void to_host(void* host, const void* dev, size_t bytes) override;
  void from_host(void* dev, const void* host, size_t bytes) override;
  void synchronize() override;
  uint64_t memory_used() override;
  uint64_t memory_total() override;
  uint64_t memory_peak(bool reset) override;

  void attn_fwd(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io) override;
  void attn_bwd(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io) override;
  void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
                 const float* part_lse) override;
  void partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) override;
  void partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o) override;
  void merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o, const float* acc_lse,
                   const HomePartial& part, void* out_o, float* out_lse) override;
  void row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) override;
  void cast_from_f32(DType to, const float* src, void* dst, size_t n) override;
  void cast_to_f32(DType from, const void* src, float* dst, size_t n) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  const std::string& device_name() const { return device_name_; }
  int sm_count() const { return sm_count_; }
  void activate() const;  // makes this backend's device current on the calling thread
  // Caps the KV splits of the forward and dQ kernels (0 = automatic); for checks and tuning.
  void set_max_splits(int n) { max_splits_ = n; }
  // Beside transfers that hold a few SMs (NCCL over host memory or the network: 2), a Hopper forward grid
  // is sized for the SMs left. Beside transfers that may hold many (NCCL over NVLink), it is split into at
  // least fwd_min_waves waves (default 4, or $XATTN_FWD_MIN_WAVES) instead: a one-wave grid runs a second
  // wave when an NCCL kernel holds SMs at its launch (2x H200 over NVLink: LV-XAttn / bound 1.06-1.12
  // with one wave, 1.02-1.04 with four). Over host memory the four waves cost 0.1-0.2 ms a forward.
  void set_transfer_sms(int sms) override { transfer_sms_ = sms < 0 ? 0 : sms; }
  bool enqueues() const override { return true; }
  void set_fwd_min_waves(int n) { fwd_min_waves_ = n < 1 ? 1 : n; }
  // H200 sustains 400-700 TFLOP/s in the Hopper kernels (backward to forward); the portable kernels a
  // third of that. Per SM, so smaller parts scale down.
  double attention_flops_per_second() const override { return sm_count_ * (sm90_ ? 3e12 : 1e12); }
  double bwd_kv_rows_per_wave(const AttnDims& d) const override;
  void trace_mark(std::string label) override;  // an event on the compute stream
  void trace_close(std::string call) override;
  std::vector<TracedCall> trace_ready() override;
  void stopwatch_mark() override;
  double stopwatch_ms() override;
  void span_begin() override;
  void span_end() override;
  double spans_ms() override;
  // Forward m-tiles per warp (1 or 2: rows per CTA 64 or 128); for checks and tuning.
  void set_fwd_mtiles(int n) { fwd_mtiles_ = n; }
  // Hopper (sm_90a wgmma) kernels: on by default where the device and the binary support them; off forces
  // the portable mma.sync kernels (for checks and comparisons).
  void set_sm90(bool on) { sm90_ = on && sm90_ok_; }
  bool sm90() const { return sm90_; }

  // Host-side waits poll instead of blocking, and call these hooks on every poll: a transport that
  // detects a dead peer throws from its hook, so no wait hangs.
  int add_wait_hook(std::function<void()> hook);
  void remove_wait_hook(int id);
  void wait_event(cudaEvent_t ev);  // polls ev to completion, running the hooks

 private:
  using Marks = std::vector<std::pair<std::string, cudaEvent_t>>;
  Marks marks_;                                        // since the last trace_close
  std::deque<std::pair<std::string, Marks>> filed_;    // closed calls the stream may not have passed yet
  cudaEvent_t traced_last_ = nullptr;                  // the last resolved call's last mark (for gaps)
  cudaEvent_t watch_[2] = {nullptr, nullptr};
  int watch_marks_ = 0;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> spans_;  // pooled: the first spans_used_ are recorded
  size_t spans_used_ = 0;
  float* workspace(size_t floats);  // scratch for split-KV partials, grown on demand
  void run_hooks();

  int device_ = 0;
  int sm_count_ = 1;
  int max_splits_ = 0;
  int fwd_mtiles_ = 2;
  int fwd_min_waves_ = 4;
  int transfer_sms_ = 0;
  bool sm90_ok_ = false, sm90_ = false;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t sync_event_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::unique_ptr<cuda::HostStaging> staging_;  // pinned buffers for large downloads, made at the first one
  std::mutex hooks_mu_;
  std::vector<std::pair<int, std::function<void()>>> hooks_;
  int next_hook_ = 1;
};

}  // namespace xattn
