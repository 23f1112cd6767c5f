// How far two device buffers of the GPU benchmarks' checks differ: the largest |x - y| over y's largest |value|.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "cuda/cuda_backend.h"

namespace xattn {

inline double relative_diff(const std::vector<float>& x, const std::vector<float>& y) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(y[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// n values of a float32 (or, with bf16, bfloat16) device buffer, as float32 on the host.
inline std::vector<float> host_floats(CudaBackend& be, const void* dev, size_t n, bool bf16 = false) {
  std::vector<float> out(n);
  if (!bf16) {
    be.to_host(out.data(), dev, n * 4);
    return out;
  }
  std::vector<uint16_t> raw(n);
  be.to_host(raw.data(), dev, n * 2);
  std::transform(raw.begin(), raw.end(), out.begin(), bf16_to_f32);
  return out;
}

inline double relative_diff(CudaBackend& be, const void* x, const void* y, size_t n, bool bf16 = false) {
  return relative_diff(host_floats(be, x, n, bf16), host_floats(be, y, n, bf16));
}

}  // namespace xattn
