// Launchers of the model-op kernels (NnOps on CUDA; host side). Everything is enqueued on `s`. Every
// reduction has a fixed shape that depends only on the problem size (never on the device), so results are
// bitwise reproducible run to run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/counter_rng.h"
#include "core/dtype.h"

namespace xattn::cuda::nn {

// Elementwise (nn_elementwise.cu).
void gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out, cudaStream_t s);
void gated_scale(int64_t n, const float* dout, const float* gate, float* da, cudaStream_t s);  // da = tanh(g)*dout
void axpy(int64_t n, float alpha, const float* x, float* y, cudaStream_t s);
void scale(int64_t n, float alpha, float* x, cudaStream_t s);
void cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype, cudaStream_t s);  // any pair
void randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype, cudaStream_t s);
void adamw(int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bias1, float bias2,
           float* param, const float* grad, float* m, float* v, cudaStream_t s);

// Ordered fp64 sums (nn_reduce.cu). `parts` is device scratch of kReduceParts doubles.
constexpr int kReduceParts = 1024;
// *result = sum(x^2).
void sum_squares(int64_t n, const float* x, double* parts, double* result, cudaStream_t s);
// *result = sum((pred - target)^2); grad (if not null) = grad_scale * 2 * (pred - target).
void squared_error(int64_t n, const float* pred, const void* target, DType target_dtype, float grad_scale,
                   float* grad, double* parts, double* result, cudaStream_t s);
// dgate[0] += (1 - tanh(gate[0])^2) * sum(dout * a).
void gate_grad(int64_t n, const float* dout, const float* a, const float* gate, float* dgate, double* parts,
               cudaStream_t s);

// RMSNorm (nn_norm.cu); see core/nn_ops.h for the formulas.
void rmsnorm_fwd(int64_t rows, int64_t n, float eps, const float* x, const float* w, void* y, DType y_dtype,
                 float* rstd, cudaStream_t s);
// dx in dx_dtype (accumulate: float32 only).
void rmsnorm_dx(int64_t rows, int64_t n, const float* x, const float* w, const float* rstd, const float* dy,
                void* dx, DType dx_dtype, bool accumulate, cudaStream_t s);
// Row chunks of the dw reduction (depends on rows only); dw_scratch needs chunks * n floats.
int64_t rmsnorm_dw_chunks(int64_t rows);
void rmsnorm_dw(int64_t rows, int64_t n, const float* x, const float* rstd, const float* dy, float* dw,
                float* dw_scratch, cudaStream_t s);

}  // namespace xattn::cuda::nn
