// NnOps on CUDA: GEMMs through cuBLAS (dlopen'ed at the first GEMM; fp32 accumulation, deterministic
// settings), everything else as kernels (nn_*.cu). All work goes on the backend's compute stream, so it is
// ordered with the attention kernels and the NCCL transfers.
#pragma once
#include <string>

#include "core/nn_ops.h"
#include "cuda/cublas_api.h"
#include "cuda/cuda_backend.h"

namespace xattn {

class CudaNnOps final : public NnOps {
 public:
  explicit CudaNnOps(CudaBackend& backend);
  ~CudaNnOps() override;
  CudaNnOps(const CudaNnOps&) = delete;
  CudaNnOps& operator=(const CudaNnOps&) = delete;

  const char* name() const override { return "cuda"; }
  void gemm(const GemmArgs& g) override;
  void rmsnorm_fwd(const RmsNormArgs& a, void* y, DType y_dtype, float* rstd) override;
  void rmsnorm_bwd(const RmsNormArgs& a, const float* rstd, const float* dy, void* dx, DType dx_dtype, bool accumulate_dx,
                   float* dw) override;
  void gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out) override;
  void gated_residual_bwd(int64_t n, const float* dout, const float* a, const float* gate, float* da,
                          float* dgate) override;
  double squared_error(int64_t n, const float* pred, const void* target, DType target_dtype, float grad_scale,
                       float* grad) override;
  double sum_squares(int64_t n, const float* x) override;
  void axpy(int64_t n, float alpha, const float* x, float* y) override;
  void scale(int64_t n, float alpha, float* x) override;
  void fill(int64_t n, float value, float* x) override;
  void randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype) override;
  void cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype) override;
  void adamw(int64_t n, const AdamWArgs& h, float* param, const float* grad, float* m, float* v) override;

  // "<library path> (version N)" of the cuBLAS in use; loads it and makes the handle if not yet done.
  std::string blas_info();

 private:
  cublas::Handle blas();                 // the handle, created on first use (nn_gemm.cc)
  void* scratch(size_t bytes);           // per-call device scratch, grown on demand (stream-ordered reuse)
  double* reduce_parts();                // partials of the ordered sums, then one result slot
  double read_result();                  // waits for the stream and returns the result slot

  CudaBackend& be_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  double* reduce_ = nullptr;
  cublas::Handle handle_ = nullptr;
  void* blas_workspace_ = nullptr;
};

}  // namespace xattn
