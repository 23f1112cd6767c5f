// CudaNnOps: everything but the GEMM (nn_gemm.cc), plus scratch memory and the factory.
#include "cuda/nn_cuda_ops.h"

#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/nn_factory.h"
#include "cuda/nn_kernels.h"

namespace xattn {

CudaNnOps::CudaNnOps(CudaBackend& backend) : be_(backend) {}

CudaNnOps::~CudaNnOps() {
  try {
    be_.synchronize();  // nothing queued may still use the handle's workspace or the scratch
    if (handle_) cublas::api().Destroy(handle_);
    be_.free(blas_workspace_);
    be_.free(scratch_);
    be_.free(reduce_);
  } catch (...) {
    // A destructor must not throw; a broken device reports itself on the backend's next call.
  }
}

void* CudaNnOps::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    be_.free(scratch_);  // waits for the stream, so no queued kernel still reads the old buffer
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    const size_t grown = bytes + bytes / 4;  // headroom so slowly growing shapes do not reallocate each call
    scratch_ = be_.alloc(grown);
    scratch_bytes_ = grown;
  }
  return scratch_;
}

double* CudaNnOps::reduce_parts() {
  if (!reduce_) reduce_ = static_cast<double*>(be_.alloc((cuda::nn::kReduceParts + 1) * sizeof(double)));
  return reduce_;
}

double CudaNnOps::read_result() {
  double r = 0.0;
  be_.to_host(&r, reduce_ + cuda::nn::kReduceParts, sizeof r);
  return r;
}

void CudaNnOps::rmsnorm_fwd(const RmsNormArgs& a, void* y, DType y_dtype, float* rstd) {
  be_.activate();
  cuda::nn::rmsnorm_fwd(a.rows, a.n, a.eps, a.x, a.w, y, y_dtype, rstd, be_.stream());
}

void CudaNnOps::rmsnorm_bwd(const RmsNormArgs& a, const float* rstd, const float* dy, void* dx, DType dx_dtype,
                            bool accumulate_dx, float* dw) {
  require(!accumulate_dx || dx_dtype == DType::F32, ErrorCode::InvalidArgument, "rmsnorm_bwd adds only into a float32 dx");
  be_.activate();
  if (a.rows <= 0 || a.n <= 0) return;
  cuda::nn::rmsnorm_dx(a.rows, a.n, a.x, a.w, rstd, dy, dx, dx_dtype, accumulate_dx, be_.stream());
  const size_t parts = static_cast<size_t>(cuda::nn::rmsnorm_dw_chunks(a.rows) * a.n);
  float* part = static_cast<float*>(scratch(parts * sizeof(float)));
  cuda::nn::rmsnorm_dw(a.rows, a.n, a.x, rstd, dy, dw, part, be_.stream());
}

void CudaNnOps::gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out) {
  be_.activate();
  cuda::nn::gated_residual_fwd(n, x, a, gate, out, be_.stream());
}

void CudaNnOps::gated_residual_bwd(int64_t n, const float* dout, const float* a, const float* gate, float* da,
                                   float* dgate) {
  be_.activate();
  cuda::nn::gated_scale(n, dout, gate, da, be_.stream());
  if (n > 0) cuda::nn::gate_grad(n, dout, a, gate, dgate, reduce_parts(), be_.stream());
}

double CudaNnOps::squared_error(int64_t n, const float* pred, const void* target, DType target_dtype,
                                float grad_scale, float* grad) {
  be_.activate();
  double* parts = reduce_parts();
  cuda::nn::squared_error(n, pred, target, target_dtype, grad_scale, grad, parts, parts + cuda::nn::kReduceParts,
                          be_.stream());
  return read_result();
}

double CudaNnOps::sum_squares(int64_t n, const float* x) {
  be_.activate();
  double* parts = reduce_parts();
  cuda::nn::sum_squares(n, x, parts, parts + cuda::nn::kReduceParts, be_.stream());
  return read_result();
}

void CudaNnOps::axpy(int64_t n, float alpha, const float* x, float* y) {
  be_.activate();
  cuda::nn::axpy(n, alpha, x, y, be_.stream());
}

void CudaNnOps::scale(int64_t n, float alpha, float* x) {
  be_.activate();
  cuda::nn::scale(n, alpha, x, be_.stream());
}

void CudaNnOps::fill(int64_t n, float value, float* x) {
  be_.activate();
  if (n > 0) cuda::fill_f32(x, static_cast<size_t>(n), value, be_.stream());
}

void CudaNnOps::randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype) {
  be_.activate();
  cuda::nn::randn(n, key, layout, std, out, out_dtype, be_.stream());
}

void CudaNnOps::cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype) {
  be_.activate();
  cuda::nn::cast(n, src, src_dtype, dst, dst_dtype, be_.stream());
}

void CudaNnOps::adamw(int64_t n, const AdamWArgs& h, float* param, const float* grad, float* m, float* v) {
  be_.activate();
  cuda::nn::adamw(n, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.bias1, h.bias2, param, grad, m, v,
                  be_.stream());
}

std::unique_ptr<NnOps> make_cuda_nn_ops(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  require(cuda != nullptr, ErrorCode::InvalidArgument,
          std::string("the CUDA model ops need the CUDA backend, got '") + backend.name() + "'");
  return std::make_unique<CudaNnOps>(*cuda);
}

}  // namespace xattn
