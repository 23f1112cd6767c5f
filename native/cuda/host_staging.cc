#include "cuda/host_staging.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/thread_pool.h"
#include "cuda/cuda_check.h"

namespace xattn::cuda {

HostStaging::HostStaging() {
  for (int b = 0; b < 2; ++b) {
    XATTN_CUDA_CHECK(cudaMallocHost(&buf_[b], kChunk));
    XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&done_[b], cudaEventDisableTiming));
  }
}

HostStaging::~HostStaging() {
  for (int b = 0; b < 2; ++b) {
    if (done_[b]) cudaEventDestroy(done_[b]);
    if (buf_[b]) cudaFreeHost(buf_[b]);
  }
}

void HostStaging::to_host(void* host, const void* dev, size_t bytes, cudaStream_t stream,
                          const std::function<void(cudaEvent_t)>& wait) {
  const size_t chunks = (bytes + kChunk - 1) / kChunk;
  const auto len = [&](size_t i) { return std::min(kChunk, bytes - i * kChunk); };
  const auto issue = [&](size_t i) {
    XATTN_CUDA_CHECK(cudaMemcpyAsync(buf_[i & 1], static_cast<const uint8_t*>(dev) + i * kChunk, len(i),
                                     cudaMemcpyDeviceToHost, stream));
    XATTN_CUDA_CHECK(cudaEventRecord(done_[i & 1], stream));
  };
  // Out of pinned memory on the CPU threads, 1 MiB each: first touches of fresh pages spread over cores.
  constexpr size_t kPiece = 1u << 20;
  issue(0);
  for (size_t i = 0; i < chunks; ++i) {
    wait(done_[i & 1]);
    if (i + 1 < chunks) issue(i + 1);  // into the other buffer, emptied in the previous round
    uint8_t* dst = static_cast<uint8_t*>(host) + i * kChunk;
    const auto* src = static_cast<const uint8_t*>(buf_[i & 1]);
    const size_t n = len(i), pieces = (n + kPiece - 1) / kPiece;
    ThreadPool::shared().parallel_for(static_cast<int64_t>(pieces), [&](int64_t p) {
      const size_t at = static_cast<size_t>(p) * kPiece;
      std::memcpy(dst + at, src + at, std::min(kPiece, n - at));
    });
  }
}

}  // namespace xattn::cuda
