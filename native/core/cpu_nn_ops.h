// NnOps on the CPU: the blocked GEMM plus row-parallel norms, gates, losses and AdamW.
#pragma once
#include "core/nn_ops.h"

namespace xattn {

class CpuNnOps final : public NnOps {
 public:
  const char* name() const override { return "cpu"; }
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
};

}  // namespace xattn
