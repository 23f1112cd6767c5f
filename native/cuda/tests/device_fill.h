// Random bf16 inputs for the GPU benchmarks (normal, from a seed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "cuda/cuda_backend.h"
#include "reference.h"

namespace xattn {

inline void fill_random_bf16(CudaBackend& be, void* dev, size_t n, uint64_t seed) {
  ref::Rng rng(seed);
  std::vector<uint16_t> h(n);
  for (auto& x : h) x = f32_to_bf16(static_cast<float>(rng.normal()));
  be.from_host(dev, h.data(), n * 2);
}

}  // namespace xattn
