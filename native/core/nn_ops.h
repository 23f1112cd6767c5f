// Model ops beside attention (projections, norms, the tanh gate, the loss, the optimizer) over one
// backend's memory. Pointers are device pointers of that backend; work runs in its stream order.
// Every reduction has a fixed order that depends only on the problem size, never on the thread count,
// so a run is bitwise reproducible on one machine (resume-after-kill reaches the same weights).
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "core/counter_rng.h"
#include "core/dtype.h"

namespace xattn {

// C[m,n] = (accumulate ? C : 0) + alpha * op(A)[m,k] · op(B)[k,n], accumulated in float32.
// Dense row-major: A is [m,k] ([k,m] when trans_a), B is [k,n] ([n,k] when trans_b), C is [m,n].
// A, B and C may each have their own dtype (a backend without mixed-type GEMM casts into scratch).
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  DType a_dtype = DType::F32;
  const void* b = nullptr;
  DType b_dtype = DType::F32;
  void* c = nullptr;
  DType c_dtype = DType::F32;
  float alpha = 1.f;
  bool accumulate = false;
};

// Row-wise RMSNorm over rows of n: rstd[r] = 1/sqrt(mean(x[r,:]^2) + eps), y = x * rstd * w.
struct RmsNormArgs {
  int64_t rows = 0, n = 0;
  float eps = 1e-5f;
  const float* x = nullptr;
  const float* w = nullptr;  // [n], shared by every row (per-head q/k norms use rows = tokens * heads)
};

// AdamW with decoupled weight decay on float32 master weights. bias1/bias2 are 1 - beta^t.
struct AdamWArgs {
  float lr = 0.f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  float bias1 = 1.f, bias2 = 1.f;
};

class NnOps {
 public:
  virtual ~NnOps() = default;
  virtual const char* name() const = 0;

  virtual void gemm(const GemmArgs& g) = 0;

  // y (dtype y_dtype) and rstd [rows] (float32).
  virtual void rmsnorm_fwd(const RmsNormArgs& a, void* y, DType y_dtype, float* rstd) = 0;
  // dx = rstd * (w*dy - xhat * mean(xhat*w*dy)) (written in dx_dtype, rounded once; or added when
  // accumulate_dx, which takes a float32 dx), dw += sum over rows of dy * xhat. xhat = x * rstd.
  virtual void rmsnorm_bwd(const RmsNormArgs& a, const float* rstd, const float* dy, void* dx, DType dx_dtype,
                           bool accumulate_dx, float* dw) = 0;

  // out = x + tanh(gate[0]) * a   (gate is a 1-element device tensor, as Llama's cross-attention gate).
  virtual void gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out) = 0;
  // da = tanh(g) * dout; dgate[0] += (1 - tanh(g)^2) * sum(dout * a). (dx = dout: the residual passes it.)
  virtual void gated_residual_bwd(int64_t n, const float* dout, const float* a, const float* gate, float* da,
                                  float* dgate) = 0;

  // Returns sum((pred - target)^2) (fp64, fixed order) and writes grad = grad_scale * 2 * (pred - target).
  virtual double squared_error(int64_t n, const float* pred, const void* target, DType target_dtype,
                               float grad_scale, float* grad) = 0;
  virtual double sum_squares(int64_t n, const float* x) = 0;

  virtual void axpy(int64_t n, float alpha, const float* x, float* y) = 0;  // y += alpha * x
  virtual void scale(int64_t n, float alpha, float* x) = 0;                 // x *= alpha
  virtual void fill(int64_t n, float value, float* x) = 0;
  virtual void cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype) = 0;

  virtual void adamw(int64_t n, const AdamWArgs& h, float* param, const float* grad, float* m, float* v) = 0;

  // out[i] = std * rng::normal(key, rng::global_index(layout, i)) for i < n, stored in out_dtype
  // (synthetic data, initial weights).
  virtual void randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype) = 0;
};

// The ops for a backend: CPU here. The CUDA backend gets its own (cuBLAS GEMM + elementwise kernels),
// created beside its backend in native/cuda and chosen by the binding (see binding/nn.cc).
std::unique_ptr<NnOps> make_nn_ops(Backend& backend);

}  // namespace xattn
