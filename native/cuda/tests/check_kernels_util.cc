#include "check_kernels_util.h"

#include <cmath>
#include <cstdio>

namespace xattn::check {

int g_failures = 0;

std::vector<double> random_values(ref::Rng& rng, size_t n, DType t, double amp) {
  std::vector<double> v(n);
  std::vector<uint8_t> tmp(4);
  for (auto& x : v) {
    store_from_f32(tmp.data(), t, 0, static_cast<float>(rng.normal() * amp));
    x = load_as_f32(tmp.data(), t, 0);
  }
  return v;
}

std::vector<uint8_t> to_bytes(const std::vector<double>& v, DType t) {
  std::vector<uint8_t> host(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) store_from_f32(host.data(), t, i, static_cast<float>(v[i]));
  return host;
}

void upload(Backend& be, void* dev, const std::vector<double>& v, DType t) {
  const std::vector<uint8_t> host = to_bytes(v, t);
  be.from_host(dev, host.data(), host.size());
}

std::vector<double> download_f32(Backend& be, const float* dev, size_t n) { return download_as(be, dev, n, DType::F32); }

std::vector<double> download_as(Backend& be, const void* dev, size_t n, DType t) {
  std::vector<uint8_t> host(n * dtype_size(t));
  be.to_host(host.data(), dev, host.size());
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = load_as_f32(host.data(), t, i);
  return out;
}

bool report(const std::string& what, const ref::Err& e, double tol, bool use_abs) {
  const double metric = use_abs ? e.max_abs : e.rel_l2;
  const bool ok = e.bad == 0 && metric <= tol && std::isfinite(metric);
  std::printf("  %-6s max_abs %.3e rel_l2 %.3e bad %lld  %s\n", what.c_str(), e.max_abs, e.rel_l2,
              static_cast<long long>(e.bad), ok ? "ok" : "FAIL");
  return ok;
}

}  // namespace xattn::check
