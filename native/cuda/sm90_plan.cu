// Whether the Hopper kernels can run here: a device of compute capability 9.0 and a binary that carries
// sm_90a code (a build for other architectures only runs the portable kernels), and the shapes they cover.
#include "cuda/kernels.h"

namespace xattn::cuda {
namespace {

// Compiled for every architecture in the build; only the sm_90a pass writes 1.
__global__ void sm90a_probe_kernel(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *out = 1;
#else
  *out = 0;
#endif
}

}  // namespace

bool sm90_available(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess || prop.major != 9 || prop.minor != 0) return false;
  int* flag = nullptr;
  int host = 0;
  bool ok = cudaMalloc(&flag, sizeof(int)) == cudaSuccess;
  if (ok) {
    sm90a_probe_kernel<<<1, 1>>>(flag);
    ok = cudaGetLastError() == cudaSuccess && cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(flag);
  }
  cudaGetLastError();  // a failed probe means "not available", not a sticky error
  return ok && host == 1;
}

bool sm90_supported(DType t, const AttnGeom& g) {
  return (t == DType::BF16 || t == DType::F16) && (g.head_dim == 64 || g.head_dim == 128) && g.group >= 1 &&
         64 % g.group == 0;
}

}  // namespace xattn::cuda
