// The few cuBLAS entry points the model ops use, loaded with dlopen at first use so the addon never needs
// cuBLAS to load (a CPU-only or NCCL-only machine works without it). Declarations follow cuBLAS's public C
// ABI (cublas_api.h, the same for cuBLAS 12 and 13): enums are C ints, handles are opaque pointers.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace xattn::cublas {

struct Context;
using Handle = Context*;

constexpr int kSuccess = 0;  // CUBLAS_STATUS_SUCCESS
constexpr int kOpN = 0, kOpT = 1;  // cublasOperation_t
// cudaDataType (library_types.h)
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;
constexpr int kCompute32F = 68;    // CUBLAS_COMPUTE_32F: fp32 accumulation, no TF32 down-conversion
constexpr int kGemmDefault = -1;   // CUBLAS_GEMM_DEFAULT (heuristic choice; no autotuning between runs)
constexpr int kDefaultMath = 0;    // CUBLAS_DEFAULT_MATH
constexpr int kDisallowReducedPrecisionReduction = 16;  // CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION
constexpr int kAtomicsNotAllowed = 0;                   // CUBLAS_ATOMICS_NOT_ALLOWED
constexpr int kPointerModeHost = 0;                     // CUBLAS_POINTER_MODE_HOST

struct Api {
  std::string path;  // the library that was loaded
  int (*Create)(Handle*);
  int (*Destroy)(Handle);
  int (*GetVersion)(Handle, int*);
  int (*SetStream)(Handle, cudaStream_t);
  int (*SetWorkspace)(Handle, void*, size_t);
  int (*SetMathMode)(Handle, int);
  int (*SetAtomicsMode)(Handle, int);
  int (*SetPointerMode)(Handle, int);
  const char* (*GetStatusString)(int);  // may be null (cuBLAS < 11.4)
  int (*GemmEx)(Handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int a_type,
                int lda, const void* b, int b_type, int ldb, const void* beta, void* c, int c_type, int ldc,
                int compute_type, int algo);
};

// Loads cuBLAS once: $XATTN_CUBLAS_LIB if set; else libcublas.so.13 from the loader path, the pip wheel
// (site-packages/nvidia/cu13/lib, nvidia/cublas/lib) or /usr/local/cuda; then the same for
// libcublas.so.12. Throws XattnError(Cuda) naming every path tried.
const Api& api();

// Throws XattnError(Cuda) with cuBLAS's message when status is not success.
void check(int status, const char* what);

}  // namespace xattn::cublas
