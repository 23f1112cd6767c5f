// Device-time timing shared by the GPU benchmark programs: batches of calls queued back to back on the
// backend's stream, CUDA events around each batch, the host waiting only once the batch is queued.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "cuda/cuda_backend.h"

namespace xattn {

inline double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

// What goes around one batch: it must call `batch` (which records the events around the queued calls) once;
// whatever it enqueues before or after falls outside the timing.
using AroundBatch = std::function<void(const std::function<void()>& batch)>;

// The median over `batches` batches of the ms per call, `calls` calls a batch, after one untimed batch.
inline double batch_median_ms(CudaBackend& be, int batches, int calls, const std::function<void()>& call,
                              const AroundBatch& around = [](const std::function<void()>& batch) { batch(); }) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> ms;
  for (int i = 0; i <= batches; ++i) {  // the first batch warms up
    around([&] {
      cudaEventRecord(a, be.stream());
      for (int k = 0; k < calls; ++k) call();
      cudaEventRecord(b, be.stream());
    });
    be.synchronize();
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    if (i > 0) ms.push_back(t / calls);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

}  // namespace xattn
