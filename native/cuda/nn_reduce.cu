// Ordered fp64 sums: the loss (squared error), sums of squares (gradient norms) and the gate's gradient.
// Two kernels: block b sums the fixed range [b * chunk, (b + 1) * chunk) with a fixed thread/tree order,
// then one block adds the partials in a fixed order. The block count depends on n alone, so a sum is the
// same bits on every run (no atomics).
#include "cuda/cuda_check.h"
#include "cuda/nn_kernels.h"
#include "cuda/nn_launch.cuh"
#include "cuda/scalar_io.cuh"

namespace xattn::cuda::nn {
namespace {

struct Squares {
  const float* x;
  __device__ double operator()(int64_t i) const { return static_cast<double>(x[i]) * x[i]; }
};

template <typename T>
struct SquaredError {
  const float* pred;
  const T* target;
  float grad_scale;
  float* grad;
  __device__ double operator()(int64_t i) const {
    const float d = pred[i] - to_f32(target[i]);
    if (grad) grad[i] = grad_scale * 2.f * d;
    return static_cast<double>(d) * d;
  }
};

struct Dot {
  const float* a;
  const float* b;
  __device__ double operator()(int64_t i) const { return static_cast<double>(a[i]) * b[i]; }
};

struct StoreSum {
  double* out;
  __device__ void operator()(double s) const { *out = s; }
};

// dgate[0] += (1 - t^2) * s, t = tanh(gate[0]) in float (as the CPU ops compute it).
struct AddGateGrad {
  const float* gate;
  float* dgate;
  __device__ void operator()(double s) const {
    const float t = tanhf(gate[0]);
    dgate[0] += static_cast<float>((1.0 - static_cast<double>(t) * t) * s);
  }
};

template <typename Term>
__global__ void __launch_bounds__(kThreads) partial_sums(int64_t n, int64_t chunk, Term term, double* parts) {
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t hi = lo + chunk < n ? lo + chunk : n;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) s += term(i);
  s = block_sum_f64(s);
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

template <typename Finish>
__global__ void __launch_bounds__(kThreads) finish_sum(int count, const double* parts, Finish finish) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) s += parts[i];
  s = block_sum_f64(s);
  if (threadIdx.x == 0) finish(s);
}

// Partials for [0, n): about 8 elements a thread, at most kReduceParts blocks; n alone decides.
template <typename Term, typename Finish>
void ordered_sum(int64_t n, Term term, Finish finish, double* parts, cudaStream_t s, const char* what) {
  int64_t blocks = (n + kThreads * 8 - 1) / (kThreads * 8);
  blocks = blocks < 1 ? 1 : blocks > kReduceParts ? kReduceParts : blocks;
  const int64_t chunk = (n + blocks - 1) / blocks;
  if (n > 0) {
    partial_sums<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(n, chunk, term, parts);
    XATTN_CUDA_LAUNCHED(what);
  }
  finish_sum<<<1, kThreads, 0, s>>>(n > 0 ? static_cast<int>(blocks) : 0, parts, finish);
  XATTN_CUDA_LAUNCHED(what);
}

}  // namespace

void sum_squares(int64_t n, const float* x, double* parts, double* result, cudaStream_t s) {
  ordered_sum(n, Squares{x}, StoreSum{result}, parts, s, "sum_squares");
}

void squared_error(int64_t n, const float* pred, const void* target, DType target_dtype, float grad_scale,
                   float* grad, double* parts, double* result, cudaStream_t s) {
  with_type(target_dtype, [&](auto tag) {
    using T = decltype(tag);
    ordered_sum(n, SquaredError<T>{pred, static_cast<const T*>(target), grad_scale, grad}, StoreSum{result}, parts,
                s, "squared_error");
  });
}

void gate_grad(int64_t n, const float* dout, const float* a, const float* gate, float* dgate, double* parts,
               cudaStream_t s) {
  if (n <= 0) return;  // adds (1 - t^2) * 0: nothing changes
  ordered_sum(n, Dot{dout, a}, AddGateGrad{gate, dgate}, parts, s, "gated_residual_bwd");
}

}  // namespace xattn::cuda::nn
