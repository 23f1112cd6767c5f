// The CUDA backend's waits and clocks: synchronize and event waits (polling the transports' failure hooks,
// so a dead peer ends a wait with its error), trace marks, the benchmark stopwatch, and memory accounting.
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace xattn {

void CudaBackend::synchronize() {
  activate();
  XATTN_CUDA_CHECK(cudaEventRecord(sync_event_, stream_));
  wait_event(sync_event_);
}

void CudaBackend::trace_mark(std::string label) {
  activate();
  cudaEvent_t e = nullptr;
  XATTN_CUDA_CHECK(cudaEventCreate(&e));
  XATTN_CUDA_CHECK(cudaEventRecord(e, stream_));
  marks_.emplace_back(std::move(label), e);
}

void CudaBackend::trace_close(std::string call) {
  if (call.empty() || marks_.empty()) {
    for (auto& m : marks_) cudaEventDestroy(m.second);
  } else {
    filed_.emplace_back(std::move(call), std::move(marks_));
  }
  marks_.clear();
}

std::vector<TracedCall> CudaBackend::trace_ready() {
  activate();
  const auto ms = [](cudaEvent_t from, cudaEvent_t to) {
    float t = 0;
    XATTN_CUDA_CHECK(cudaEventElapsedTime(&t, from, to));
    return static_cast<double>(t);
  };
  std::vector<TracedCall> out;
  while (!filed_.empty() && cudaEventQuery(filed_.front().second.back().second) == cudaSuccess) {
    auto [call, marks] = std::move(filed_.front());
    filed_.pop_front();
    TracedCall c{std::move(call), traced_last_ ? ms(traced_last_, marks.front().second) : -1, {}};
    for (auto& [label, e] : marks) c.marks.emplace_back(std::move(label), ms(marks.front().second, e));
    if (traced_last_) cudaEventDestroy(traced_last_);
    traced_last_ = marks.back().second;
    marks.pop_back();
    for (auto& m : marks) cudaEventDestroy(m.second);
    out.push_back(std::move(c));
  }
  return out;
}

void CudaBackend::stopwatch_mark() {
  activate();
  std::swap(watch_[0], watch_[1]);
  if (!watch_[1]) XATTN_CUDA_CHECK(cudaEventCreate(&watch_[1]));
  XATTN_CUDA_CHECK(cudaEventRecord(watch_[1], stream_));
  ++watch_marks_;
}

double CudaBackend::stopwatch_ms() {
  require(watch_marks_ >= 2, ErrorCode::InvalidArgument, "the stopwatch needs two marks before a reading");
  activate();
  wait_event(watch_[1]);
  float ms = 0;
  XATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, watch_[0], watch_[1]));
  return ms;
}

void CudaBackend::span_begin() {
  activate();
  if (spans_used_ == spans_.size()) {
    spans_.emplace_back();
    XATTN_CUDA_CHECK(cudaEventCreate(&spans_.back().first));
    XATTN_CUDA_CHECK(cudaEventCreate(&spans_.back().second));
  }
  XATTN_CUDA_CHECK(cudaEventRecord(spans_[spans_used_].first, stream_));
}

void CudaBackend::span_end() {
  activate();
  XATTN_CUDA_CHECK(cudaEventRecord(spans_[spans_used_++].second, stream_));
}

double CudaBackend::spans_ms() {
  activate();
  double total = 0;
  if (spans_used_ > 0) wait_event(spans_[spans_used_ - 1].second);
  for (size_t i = 0; i < spans_used_; ++i) {
    float ms = 0;
    XATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, spans_[i].first, spans_[i].second));
    total += ms;
  }
  spans_used_ = 0;
  return total;
}

uint64_t CudaBackend::memory_used() {
  activate();
  size_t free_bytes = 0, total = 0;
  XATTN_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return static_cast<uint64_t>(total - free_bytes);
}

uint64_t CudaBackend::memory_total() {
  activate();
  size_t free_bytes = 0, total = 0;
  XATTN_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return static_cast<uint64_t>(total);
}

uint64_t CudaBackend::memory_peak(bool reset) {
  activate();
  uint64_t high = 0;
  XATTN_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &high));
  if (reset) {
    uint64_t zero = 0;
    XATTN_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &zero));
  }
  return high;
}

int CudaBackend::add_wait_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(hooks_mu_);
  hooks_.emplace_back(next_hook_, std::move(hook));
  return next_hook_++;
}

void CudaBackend::remove_wait_hook(int id) {
  std::lock_guard<std::mutex> lock(hooks_mu_);
  for (auto it = hooks_.begin(); it != hooks_.end(); ++it)
    if (it->first == id) {
      hooks_.erase(it);
      return;
    }
}

void CudaBackend::run_hooks() {
  std::vector<std::function<void()>> copy;
  {
    std::lock_guard<std::mutex> lock(hooks_mu_);
    for (auto& h : hooks_) copy.push_back(h.second);
  }
  for (auto& h : copy) h();
}

void CudaBackend::wait_event(cudaEvent_t ev) {
  for (int polls = 0;; ++polls) {
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return;
    run_hooks();  // a transport failure explains a stuck or failed stream better than the CUDA error
    if (e != cudaErrorNotReady) cuda::throw_cuda(e, "waiting for the compute stream", __FILE__, __LINE__);
    // Spin briefly for short waits, then sleep so a long step does not burn a core.
    if (polls < 200)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(polls < 2000 ? 20 : 200));
  }
}

}  // namespace xattn
