#include "cuda/driver_entry.h"

#include <cuda_runtime_api.h>

namespace xattn::cuda {

void* driver_entry(const char* name, int version) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult q{};
  if (cudaGetDriverEntryPointByVersion(name, &p, version, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess) {
    cudaGetLastError();  // a missing symbol is an answer here, not a sticky error for the next call
    return nullptr;
  }
  return p;
}

}  // namespace xattn::cuda
