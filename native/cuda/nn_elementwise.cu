// Elementwise model ops: the tanh gate + residual, axpy/scale, casts between any two dtypes, AdamW, randn.
// Each element's arithmetic matches the CPU ops (core/cpu_nn_ops.cc) up to FMA contraction.
#include <cstdint>

#include "cuda/cuda_check.h"
#include "cuda/nn_kernels.h"
#include "cuda/nn_launch.cuh"
#include "cuda/scalar_io.cuh"

namespace xattn::cuda::nn {
namespace {

// Grid-stride loop over [0, n).
#define XATTN_FOR_EACH(i, n)                                                                   \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);      \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void gated_residual_kernel(int64_t n, const float* x, const float* a, const float* gate, float* out) {
  const float t = tanhf(gate[0]);
  XATTN_FOR_EACH(i, n) out[i] = x[i] + t * a[i];
}

__global__ void gated_scale_kernel(int64_t n, const float* dout, const float* gate, float* da) {
  const float t = tanhf(gate[0]);
  XATTN_FOR_EACH(i, n) da[i] = t * dout[i];
}

__global__ void axpy_kernel(int64_t n, float alpha, const float* x, float* y) {
  XATTN_FOR_EACH(i, n) y[i] += alpha * x[i];
}

__global__ void scale_kernel(int64_t n, float alpha, float* x) {
  XATTN_FOR_EACH(i, n) x[i] *= alpha;
}

template <typename D>
__global__ void randn_kernel(int64_t n, uint32_t key, rng::ShardLayout layout, float std, D* out) {
  XATTN_FOR_EACH(i, n) out[i] = from_f32<D>(std * rng::normal(key, rng::global_index(layout, i)));
}

template <typename S, typename D>
__global__ void cast_kernel(int64_t n, const S* src, D* dst) {
  XATTN_FOR_EACH(i, n) dst[i] = from_f32<D>(to_f32(src[i]));
}

// Four elements a thread in one access each way (these ops are memory-bound: wide accesses keep more bytes
// in flight), where every pointer is aligned to its four elements; block 0 takes the n % 4 tail.
template <typename T>
struct alignas(4 * sizeof(T)) Four {
  T v[4];
};

template <typename T>
bool four_aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(Four<T>) == 0;
}

#define XATTN_TAIL_OF_FOUR(i, n)                                                               \
  for (int64_t i = (n) / 4 * 4 + threadIdx.x; blockIdx.x == 0 && i < (n); i += blockDim.x)

template <typename S, typename D>
__global__ void cast_four_kernel(int64_t n, const S* src, D* dst) {
  XATTN_FOR_EACH(i, n / 4) {
    const Four<S> a = reinterpret_cast<const Four<S>*>(src)[i];
    Four<D> b;
#pragma unroll
    for (int k = 0; k < 4; ++k) b.v[k] = from_f32<D>(to_f32(a.v[k]));
    reinterpret_cast<Four<D>*>(dst)[i] = b;
  }
  XATTN_TAIL_OF_FOUR(i, n) dst[i] = from_f32<D>(to_f32(src[i]));
}

struct AdamW {
  float lr, beta1, beta2, eps, decay, bias1, bias2;
};

// One element's update: m and v in place, the new parameter returned.
__device__ __forceinline__ float adamw_one(const AdamW& h, float p, float g, float& m, float& v) {
  m = h.beta1 * m + (1.f - h.beta1) * g;
  v = h.beta2 * v + (1.f - h.beta2) * g * g;
  const float update = (m / h.bias1) / (sqrtf(v / h.bias2) + h.eps);
  return p * h.decay - h.lr * update;
}

__global__ void adamw_kernel(int64_t n, AdamW h, float* param, const float* grad, float* m, float* v) {
  XATTN_FOR_EACH(i, n) param[i] = adamw_one(h, param[i], grad[i], m[i], v[i]);
}

__global__ void adamw_four_kernel(int64_t n, AdamW h, float* param, const float* grad, float* m, float* v) {
  using F = Four<float>;
  XATTN_FOR_EACH(i, n / 4) {
    F p = reinterpret_cast<F*>(param)[i], mi = reinterpret_cast<F*>(m)[i], vi = reinterpret_cast<F*>(v)[i];
    const F g = reinterpret_cast<const F*>(grad)[i];
#pragma unroll
    for (int k = 0; k < 4; ++k) p.v[k] = adamw_one(h, p.v[k], g.v[k], mi.v[k], vi.v[k]);
    reinterpret_cast<F*>(param)[i] = p;
    reinterpret_cast<F*>(m)[i] = mi;
    reinterpret_cast<F*>(v)[i] = vi;
  }
  XATTN_TAIL_OF_FOUR(i, n) param[i] = adamw_one(h, param[i], grad[i], m[i], v[i]);
}

#undef XATTN_TAIL_OF_FOUR
#undef XATTN_FOR_EACH

}  // namespace

void gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out, cudaStream_t s) {
  if (n <= 0) return;
  gated_residual_kernel<<<grid_for(n), kThreads, 0, s>>>(n, x, a, gate, out);
  XATTN_CUDA_LAUNCHED("gated_residual_fwd");
}

void gated_scale(int64_t n, const float* dout, const float* gate, float* da, cudaStream_t s) {
  if (n <= 0) return;
  gated_scale_kernel<<<grid_for(n), kThreads, 0, s>>>(n, dout, gate, da);
  XATTN_CUDA_LAUNCHED("gated_residual_bwd");
}

void axpy(int64_t n, float alpha, const float* x, float* y, cudaStream_t s) {
  if (n <= 0) return;
  axpy_kernel<<<grid_for(n), kThreads, 0, s>>>(n, alpha, x, y);
  XATTN_CUDA_LAUNCHED("axpy");
}

void scale(int64_t n, float alpha, float* x, cudaStream_t s) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, s>>>(n, alpha, x);
  XATTN_CUDA_LAUNCHED("scale");
}

void cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype, cudaStream_t s) {
  if (n <= 0) return;
  if (src_dtype == dst_dtype) {  // a plain copy (memmove semantics are not needed: the binding never overlaps)
    if (src != dst)
      XATTN_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(src_dtype),
                                       cudaMemcpyDeviceToDevice, s));
    return;
  }
  with_type(src_dtype, [&](auto s_tag) {
    with_type(dst_dtype, [&](auto d_tag) {
      using S = decltype(s_tag);
      using D = decltype(d_tag);
      if (four_aligned<S>(src) && four_aligned<D>(dst))
        cast_four_kernel<S, D><<<grid_for(n / 4), kThreads, 0, s>>>(n, static_cast<const S*>(src), static_cast<D*>(dst));
      else
        cast_kernel<S, D><<<grid_for(n), kThreads, 0, s>>>(n, static_cast<const S*>(src), static_cast<D*>(dst));
    });
  });
  XATTN_CUDA_LAUNCHED("cast");
}

void randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype, cudaStream_t s) {
  if (n <= 0) return;
  with_type(out_dtype, [&](auto tag) {
    using D = decltype(tag);
    randn_kernel<D><<<grid_for(n), kThreads, 0, s>>>(n, key, layout, std, static_cast<D*>(out));
  });
  XATTN_CUDA_LAUNCHED("randn");
}

void adamw(int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float bias1, float bias2,
           float* param, const float* grad, float* m, float* v, cudaStream_t s) {
  if (n <= 0) return;
  const AdamW h{lr, beta1, beta2, eps, 1.f - lr * weight_decay, bias1, bias2};
  if (four_aligned<float>(param) && four_aligned<float>(grad) && four_aligned<float>(m) && four_aligned<float>(v))
    adamw_four_kernel<<<grid_for(n / 4), kThreads, 0, s>>>(n, h, param, grad, m, v);
  else
    adamw_kernel<<<grid_for(n), kThreads, 0, s>>>(n, h, param, grad, m, v);
  XATTN_CUDA_LAUNCHED("adamw");
}

}  // namespace xattn::cuda::nn
