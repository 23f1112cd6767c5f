// Scalar loads/stores in any storage dtype, for the generic and element-wise kernels.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace xattn::cuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

}  // namespace xattn::cuda

// Calls FN<T>(args...) with T the CUDA type of a storage dtype.
#define XATTN_DISPATCH_DTYPE(dt, FN, ...)                          \
  do {                                                             \
    switch (dt) {                                                  \
      case ::xattn::DType::F32: FN<float>(__VA_ARGS__); break;     \
      case ::xattn::DType::BF16: FN<__nv_bfloat16>(__VA_ARGS__); break; \
      default: FN<__half>(__VA_ARGS__); break;                     \
    }                                                              \
  } while (0)
