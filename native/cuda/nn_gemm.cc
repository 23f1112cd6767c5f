// CudaNnOps::gemm through cublasGemmEx with fp32 accumulation (the argument mapping: nn_gemm_plan.h).
// Reproducibility (cuBLAS's documented conditions): one stream, a fixed user workspace, atomics off,
// CUBLAS_GEMM_DEFAULT, no reduced-precision reductions.
#include <climits>
#include <string>

#include "core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/nn_cuda_ops.h"
#include "cuda/nn_gemm_plan.h"
#include "cuda/nn_kernels.h"

namespace xattn {
namespace {

constexpr size_t kBlasWorkspace = size_t{32} << 20;  // cuBLAS's recommended size on Hopper

int blas_type(DType t) {
  switch (t) {
    case DType::F32: return cublas::kR32F;
    case DType::BF16: return cublas::kR16BF;
    default: return cublas::kR16F;
  }
}

int dim(int64_t v, const char* name) {
  require(v >= 0 && v <= INT_MAX, ErrorCode::InvalidArgument,
          std::string("gemm: ") + name + " = " + std::to_string(v) + " is outside cuBLAS's int range");
  return static_cast<int>(v);
}

size_t round_up(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

}  // namespace

cublas::Handle CudaNnOps::blas() {
  if (handle_) return handle_;
  const cublas::Api& api = cublas::api();
  be_.activate();
  if (!blas_workspace_) blas_workspace_ = be_.alloc(kBlasWorkspace);
  cublas::Handle h = nullptr;
  cublas::check(api.Create(&h), "cublasCreate");
  try {
    cublas::check(api.SetStream(h, be_.stream()), "cublasSetStream");
    // After SetStream, which resets the workspace to cuBLAS's own pool.
    cublas::check(api.SetWorkspace(h, blas_workspace_, kBlasWorkspace), "cublasSetWorkspace");
    cublas::check(api.SetMathMode(h, cublas::kDefaultMath | cublas::kDisallowReducedPrecisionReduction),
                  "cublasSetMathMode");
    cublas::check(api.SetAtomicsMode(h, cublas::kAtomicsNotAllowed), "cublasSetAtomicsMode");
    cublas::check(api.SetPointerMode(h, cublas::kPointerModeHost), "cublasSetPointerMode");
  } catch (...) {
    api.Destroy(h);
    throw;
  }
  handle_ = h;
  return h;
}

std::string CudaNnOps::blas_info() {
  cublas::Handle h = blas();
  int version = 0;
  cublas::check(cublas::api().GetVersion(h, &version), "cublasGetVersion");
  return cublas::api().path + " (version " + std::to_string(version) + ")";
}

void CudaNnOps::gemm(const GemmArgs& g) {
  const int m = dim(g.m, "m"), n = dim(g.n, "n"), k = dim(g.k, "k");
  if (m == 0 || n == 0) return;
  be_.activate();
  cudaStream_t s = be_.stream();
  const size_t mn = static_cast<size_t>(g.m) * static_cast<size_t>(g.n);
  if (k == 0) {  // an empty sum: C = 0 (or unchanged when accumulating); all-zero bits are +0 in every dtype
    if (!g.accumulate) XATTN_CUDA_CHECK(cudaMemsetAsync(g.c, 0, mn * dtype_size(g.c_dtype), s));
    return;
  }
  const cublas::Handle h = blas();  // loads cuBLAS before anything is enqueued
  const cuda::nn::GemmPlan p = cuda::nn::plan_gemm(g);
  const size_t a_n = static_cast<size_t>(g.m) * static_cast<size_t>(g.k);
  const size_t b_n = static_cast<size_t>(g.k) * static_cast<size_t>(g.n);
  const size_t a_bytes = p.cast_a ? round_up(a_n * 4) : 0, b_bytes = p.cast_b ? round_up(b_n * 4) : 0;
  const size_t c_bytes = p.c_via_f32 ? round_up(mn * 4) : 0;
  char* ws = a_bytes + b_bytes + c_bytes > 0 ? static_cast<char*>(scratch(a_bytes + b_bytes + c_bytes)) : nullptr;

  const void* a = g.a;
  const void* b = g.b;
  void* c = g.c;
  DType c_type = g.c_dtype;
  if (p.cast_a) {
    cuda::nn::cast(static_cast<int64_t>(a_n), g.a, g.a_dtype, ws, DType::F32, s);
    a = ws;
  }
  if (p.cast_b) {
    cuda::nn::cast(static_cast<int64_t>(b_n), g.b, g.b_dtype, ws + a_bytes, DType::F32, s);
    b = ws + a_bytes;
  }
  if (p.c_via_f32) {
    c = ws + a_bytes + b_bytes;
    c_type = DType::F32;
    if (g.accumulate) cuda::nn::cast(static_cast<int64_t>(mn), g.c, g.c_dtype, c, DType::F32, s);
  }
  const float alpha = g.alpha, beta = g.accumulate ? 1.f : 0.f;
  auto op = [](bool t) { return t ? cublas::kOpT : cublas::kOpN; };
  cublas::check(cublas::api().GemmEx(h, op(p.op1_t), op(p.op2_t), static_cast<int>(p.m), static_cast<int>(p.n),
                                     static_cast<int>(p.k), &alpha, b, blas_type(p.in), static_cast<int>(p.ld1), a,
                                     blas_type(p.in), static_cast<int>(p.ld2), &beta, c, blas_type(c_type),
                                     static_cast<int>(p.ldc), cublas::kCompute32F, cublas::kGemmDefault),
                "cublasGemmEx");
  if (p.c_via_f32) cuda::nn::cast(static_cast<int64_t>(mn), c, DType::F32, g.c, g.c_dtype, s);
}

}  // namespace xattn
