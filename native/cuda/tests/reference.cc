#include "reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

namespace xattn::ref {
namespace {

// Runs f(item) for item in [0, n) over the machine's cores.
template <typename F>
void parallel_for(int64_t n, F f) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(n, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < t; ++w)
    pool.emplace_back([=] {
      for (int64_t i = w; i < n; i += t) f(i);
    });
  for (auto& th : pool) th.join();
}

void visible(const Problem& p, int64_t b, int64_t i, int64_t& beg, int64_t& end) {
  beg = 0;
  end = p.lkv;
  if (p.mask.empty()) return;
  beg = std::max<int64_t>(0, p.mask[(b * p.lq + i) * 2] - p.kv_offset);
  end = std::min<int64_t>(p.lkv, p.mask[(b * p.lq + i) * 2 + 1] - p.kv_offset);
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void forward(const Problem& p, std::vector<double>& o, std::vector<double>& lse) {
  const auto& d = p.d;
  const int64_t B = d.batch, H = d.heads, Hk = d.kv_heads, D = d.head_dim, G = H / Hk;
  const double scale = d.softmax_scale();
  o.assign(B * p.lq * H * D, 0.0);
  lse.assign(B * H * p.lq, -std::numeric_limits<double>::infinity());
  parallel_for(B * p.lq * H, [&](int64_t w) {
    const int64_t h = w % H, i = (w / H) % p.lq, b = w / (H * p.lq);
    int64_t beg, end;
    visible(p, b, i, beg, end);
    if (beg >= end) return;
    std::vector<double> s(end - beg);
    const double* q = &p.q[w * D];
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = beg; j < end; ++j) {
      s[j - beg] = scale * dot(q, &p.k[((b * p.lkv + j) * Hk + h / G) * D], D);
      mx = std::max(mx, s[j - beg]);
    }
    double sum = 0;
    for (auto& x : s) sum += (x = std::exp(x - mx));
    for (int64_t j = beg; j < end; ++j) {
      const double* v = &p.v[((b * p.lkv + j) * Hk + h / G) * D];
      for (int64_t c = 0; c < D; ++c) o[w * D + c] += s[j - beg] / sum * v[c];
    }
    lse[(b * H + h) * p.lq + i] = mx + std::log(sum);
  });
}

void backward(const Problem& p, const std::vector<double>& lse, const std::vector<double>& drow,
              std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv) {
  const auto& d = p.d;
  const int64_t B = d.batch, H = d.heads, Hk = d.kv_heads, D = d.head_dim, G = H / Hk;
  const double scale = d.softmax_scale();
  dq.assign(B * p.lq * H * D, 0.0);
  dk.assign(B * p.lkv * Hk * D, 0.0);
  dv.assign(B * p.lkv * Hk * D, 0.0);
  // dS for one (b, i, h, j); each output is reduced by a single thread so no locks are needed.
  auto grad_s = [&](int64_t b, int64_t i, int64_t h, int64_t j, double& pr) {
    const int64_t w = (b * p.lq + i) * H + h, kv = ((b * p.lkv + j) * Hk + h / G) * D;
    const double l = lse[(b * H + h) * p.lq + i];
    pr = std::exp(scale * dot(&p.q[w * D], &p.k[kv], D) - l);
    return pr * (dot(&p.dout[w * D], &p.v[kv], D) - drow[(b * H + h) * p.lq + i]);
  };
  parallel_for(B * p.lq * H, [&](int64_t w) {
    const int64_t h = w % H, i = (w / H) % p.lq, b = w / (H * p.lq);
    if (std::isinf(lse[(b * H + h) * p.lq + i])) return;
    int64_t beg, end;
    visible(p, b, i, beg, end);
    for (int64_t j = beg; j < end; ++j) {
      double pr;
      const double ds = grad_s(b, i, h, j, pr);
      const double* k = &p.k[((b * p.lkv + j) * Hk + h / G) * D];
      for (int64_t c = 0; c < D; ++c) dq[w * D + c] += scale * ds * k[c];
    }
  });
  parallel_for(B * p.lkv * Hk, [&](int64_t w) {
    const int64_t hk = w % Hk, j = (w / Hk) % p.lkv, b = w / (Hk * p.lkv);
    for (int64_t i = 0; i < p.lq; ++i) {
      int64_t beg, end;
      visible(p, b, i, beg, end);
      if (j < beg || j >= end) continue;
      for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
        if (std::isinf(lse[(b * H + h) * p.lq + i])) continue;
        double pr;
        const double ds = grad_s(b, i, h, j, pr);
        const int64_t qw = ((b * p.lq + i) * H + h) * D;
        for (int64_t c = 0; c < D; ++c) {
          dk[w * D + c] += scale * ds * p.q[qw + c];
          dv[w * D + c] += pr * p.dout[qw + c];
        }
      }
    }
  });
}

Err compare(const std::vector<double>& out, const std::vector<double>& ref) {
  Err e;
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double a = out[i], r = ref[i];
    if (std::isinf(r) || std::isinf(a)) {
      if (a != r) ++e.bad;
      continue;
    }
    if (std::isnan(a)) { ++e.bad; continue; }
    e.max_abs = std::max(e.max_abs, std::abs(a - r));
    num += (a - r) * (a - r);
    den += r * r;
  }
  e.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}

}  // namespace xattn::ref
