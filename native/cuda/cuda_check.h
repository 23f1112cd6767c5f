// Turns CUDA runtime failures into XattnError(Cuda) with the call site, so no error passes silently.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace xattn::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  fail(ErrorCode::Cuda, std::string(what) + " failed: " + cudaGetErrorString(e) + " (" + file + ":" +
                            std::to_string(line) + ")");
}

}  // namespace xattn::cuda

#define XATTN_CUDA_CHECK(call)                                                   \
  do {                                                                           \
    cudaError_t xattn_err_ = (call);                                             \
    if (xattn_err_ != cudaSuccess) ::xattn::cuda::throw_cuda(xattn_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports bad launch configurations at once.
#define XATTN_CUDA_LAUNCHED(name) XATTN_CUDA_CHECK(cudaGetLastError())
