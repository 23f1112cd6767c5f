// Large device-to-host copies through two pinned buffers. A pageable cudaMemcpy moved a 4 GB checkpoint
// snapshot at about 1 GB/s on an H200 host (the driver stages through small pinned buffers, and one thread
// faults the fresh destination pages in); here the copy engine fills one buffer while the CPU threads copy
// the other out.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

namespace xattn::cuda {

class HostStaging {
 public:
  static constexpr size_t kMinBytes = 8u << 20;  // smaller copies take the pageable path
  HostStaging();                                  // on the current device
  ~HostStaging();
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  // Copies after the work already queued on `stream`; `wait` polls an event to completion.
  void to_host(void* host, const void* dev, size_t bytes, cudaStream_t stream, const std::function<void(cudaEvent_t)>& wait);

 private:
  static constexpr size_t kChunk = 64u << 20;
  void* buf_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
};

}  // namespace xattn::cuda
