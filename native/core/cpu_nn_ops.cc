#include "core/cpu_nn_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_attention.h"
#include "core/cpu_nn_gemm.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace xattn {

namespace {

// [0, n) cut into chunks whose count depends on n alone, so partial sums combine in the same order
// whatever the thread count.
struct Chunks {
  int64_t n, size, count;
};

Chunks fixed_chunks(int64_t n, int64_t min_size) {
  const int64_t count = std::clamp<int64_t>(n / std::max<int64_t>(1, min_size), 1, 64);
  const int64_t size = (n + count - 1) / count;
  return {n, size, n == 0 ? 0 : (n + size - 1) / size};
}

template <typename Fn>
void for_chunks(const Chunks& c, Fn&& fn) {
  ThreadPool::shared().parallel_for(c.count, [&](int64_t i) {
    const int64_t lo = i * c.size, hi = std::min(c.n, lo + c.size);
    fn(i, lo, hi);
  });
}

// Sum over [0, n) of term(i) in fp64: per-chunk partials added in chunk order.
template <typename Term>
double ordered_sum(int64_t n, Term&& term) {
  const Chunks c = fixed_chunks(n, 1 << 14);
  std::vector<double> part(static_cast<size_t>(c.count), 0.0);
  for_chunks(c, [&](int64_t i, int64_t lo, int64_t hi) {
    double s = 0.0;
    for (int64_t j = lo; j < hi; ++j) s += term(j);
    part[static_cast<size_t>(i)] = s;
  });
  double total = 0.0;
  for (double s : part) total += s;
  return total;
}

template <typename Fn>
void elementwise(int64_t n, Fn&& fn) {
  for_chunks(fixed_chunks(n, 1 << 14), [&](int64_t, int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) fn(j);
  });
}

}  // namespace

void CpuNnOps::gemm(const GemmArgs& g) { cpu::gemm(g); }

void CpuNnOps::rmsnorm_fwd(const RmsNormArgs& a, void* y, DType y_dtype, float* rstd) {
  const int64_t n = a.n;
  for_chunks(fixed_chunks(a.rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n))), [&](int64_t, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* x = a.x + r * n;
      double ss = 0.0;
      for (int64_t j = 0; j < n; ++j) ss += static_cast<double>(x[j]) * x[j];
      const float s = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + a.eps));
      rstd[r] = s;
      for (int64_t j = 0; j < n; ++j) store_from_f32(y, y_dtype, static_cast<size_t>(r * n + j), x[j] * s * a.w[j]);
    }
  });
}

void CpuNnOps::rmsnorm_bwd(const RmsNormArgs& a, const float* rstd, const float* dy, void* dx, DType dx_dtype,
                           bool accumulate_dx, float* dw) {
  require(!accumulate_dx || dx_dtype == DType::F32, ErrorCode::InvalidArgument, "rmsnorm_bwd adds only into a float32 dx");
  const int64_t n = a.n;
  const Chunks c = fixed_chunks(a.rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)));
  std::vector<float> dw_part(static_cast<size_t>(c.count * n), 0.f);
  for_chunks(c, [&](int64_t ci, int64_t lo, int64_t hi) {
    float* dwp = dw_part.data() + ci * n;
    for (int64_t r = lo; r < hi; ++r) {
      const float* x = a.x + r * n;
      const float* g = dy + r * n;
      const float s = rstd[r];
      double dot = 0.0;
      for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(a.w[j] * g[j]) * (x[j] * s);
      const float mean = static_cast<float>(dot / static_cast<double>(n));
      for (int64_t j = 0; j < n; ++j) {
        const float xhat = x[j] * s;
        const float v = s * (a.w[j] * g[j] - xhat * mean);
        const size_t at = static_cast<size_t>(r * n + j);
        store_from_f32(dx, dx_dtype, at, accumulate_dx ? static_cast<float*>(dx)[at] + v : v);
        dwp[j] += g[j] * xhat;
      }
    }
  });
  for (int64_t ci = 0; ci < c.count; ++ci)
    for (int64_t j = 0; j < n; ++j) dw[j] += dw_part[static_cast<size_t>(ci * n + j)];
}

void CpuNnOps::gated_residual_fwd(int64_t n, const float* x, const float* a, const float* gate, float* out) {
  const float t = std::tanh(gate[0]);
  elementwise(n, [&](int64_t i) { out[i] = x[i] + t * a[i]; });
}

void CpuNnOps::gated_residual_bwd(int64_t n, const float* dout, const float* a, const float* gate, float* da,
                                  float* dgate) {
  const float t = std::tanh(gate[0]);
  elementwise(n, [&](int64_t i) { da[i] = t * dout[i]; });
  const double s = ordered_sum(n, [&](int64_t i) { return static_cast<double>(dout[i]) * a[i]; });
  dgate[0] += static_cast<float>((1.0 - static_cast<double>(t) * t) * s);
}

double CpuNnOps::squared_error(int64_t n, const float* pred, const void* target, DType target_dtype,
                               float grad_scale, float* grad) {
  return ordered_sum(n, [&](int64_t i) {
    const float d = pred[i] - load_as_f32(target, target_dtype, static_cast<size_t>(i));
    if (grad) grad[i] = grad_scale * 2.f * d;
    return static_cast<double>(d) * d;
  });
}

double CpuNnOps::sum_squares(int64_t n, const float* x) {
  return ordered_sum(n, [&](int64_t i) { return static_cast<double>(x[i]) * x[i]; });
}

void CpuNnOps::axpy(int64_t n, float alpha, const float* x, float* y) {
  elementwise(n, [&](int64_t i) { y[i] += alpha * x[i]; });
}

void CpuNnOps::scale(int64_t n, float alpha, float* x) {
  elementwise(n, [&](int64_t i) { x[i] *= alpha; });
}

void CpuNnOps::fill(int64_t n, float value, float* x) {
  elementwise(n, [&](int64_t i) { x[i] = value; });
}

void CpuNnOps::randn(int64_t n, uint32_t key, const rng::ShardLayout& layout, float std, void* out, DType out_dtype) {
  elementwise(n, [&](int64_t i) {
    store_from_f32(out, out_dtype, static_cast<size_t>(i), std * rng::normal(key, rng::global_index(layout, i)));
  });
}

void CpuNnOps::cast(int64_t n, const void* src, DType src_dtype, void* dst, DType dst_dtype) {
  const size_t count = static_cast<size_t>(n);
  if (src_dtype == dst_dtype) {
    if (count) std::memmove(dst, src, count * dtype_size(src_dtype));
  } else if (src_dtype == DType::F32) {
    cpu::cast_from_f32(dst_dtype, static_cast<const float*>(src), dst, count);
  } else if (dst_dtype == DType::F32) {
    cpu::cast_to_f32(src_dtype, src, static_cast<float*>(dst), count);
  } else {
    elementwise(n, [&](int64_t i) {
      store_from_f32(dst, dst_dtype, static_cast<size_t>(i), load_as_f32(src, src_dtype, static_cast<size_t>(i)));
    });
  }
}

void CpuNnOps::adamw(int64_t n, const AdamWArgs& h, float* param, const float* grad, float* m, float* v) {
  const float decay = 1.f - h.lr * h.weight_decay;
  elementwise(n, [&](int64_t i) {
    const float g = grad[i];
    m[i] = h.beta1 * m[i] + (1.f - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1.f - h.beta2) * g * g;
    const float update = (m[i] / h.bias1) / (std::sqrt(v[i] / h.bias2) + h.eps);
    param[i] = param[i] * decay - h.lr * update;
  });
}

}  // namespace xattn
