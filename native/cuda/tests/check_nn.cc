// Standalone GPU check (no Node) of the CUDA model ops (CudaNnOps: cuBLAS GEMMs + kernels) against the CPU
// ones (CpuNnOps), op by op, on random shapes: odd sizes, empty sizes, every transpose pair and every
// A/B/C dtype triple of the GEMM, every cast pair (with infinities, NaN, overflow and subnormals), all
// RMSNorm output dtypes, accumulation onto non-zero outputs. Each GPU op also runs twice on fresh inputs and
// must give the same bits (run-to-run reproducibility). Prints "N passed, M failed"; exits 1 on a failure.
// Usage: xattn_nn_check [device] [seed]
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/cpu_nn_ops.h"
#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/nn_cuda_ops.h"
#include "reference.h"

using namespace xattn;

namespace {

int g_passed = 0, g_failed = 0;
const DType kTypes[] = {DType::F32, DType::BF16, DType::F16};

// n values stored in dtype t on the host.
struct Arr {
  DType t = DType::F32;
  std::vector<uint8_t> bytes;
  size_t n() const { return bytes.size() / dtype_size(t); }
  float at(size_t i) const { return load_as_f32(bytes.data(), t, i); }
  void* data() { return bytes.data(); }
  float* f() { return reinterpret_cast<float*>(bytes.data()); }
};

Arr make(size_t n, DType t, const std::function<float(size_t)>& gen) {
  Arr a;
  a.t = t;
  a.bytes.resize(n * dtype_size(t));
  for (size_t i = 0; i < n; ++i) store_from_f32(a.bytes.data(), t, i, gen(i));
  return a;
}
Arr rnd(ref::Rng& rng, size_t n, DType t = DType::F32, double amp = 1.0) {
  return make(n, t, [&](size_t) { return static_cast<float>(rng.normal() * amp); });
}
Arr full(size_t n, DType t, float v) { return make(n, t, [&](size_t) { return v; }); }

// A device copy of an Arr, `off` elements past a fresh allocation (off > 0: misaligned pointers).
struct Dev {
  CudaBackend& be;
  DType t;
  size_t n, off;
  void* base;
  Dev(CudaBackend& b, const Arr& a, size_t off_elems = 0) : be(b), t(a.t), n(a.n()), off(off_elems) {
    base = be.alloc((n + off) * dtype_size(t) + 16);
    if (n) be.from_host(ptr(), a.bytes.data(), a.bytes.size());
  }
  ~Dev() { be.free(base); }
  void* ptr() const { return static_cast<char*>(base) + off * dtype_size(t); }
  float* f() const { return static_cast<float*>(ptr()); }
  Arr get() const {
    Arr a;
    a.t = t;
    a.bytes.resize(n * dtype_size(t));
    if (n) be.to_host(a.bytes.data(), ptr(), a.bytes.size());
    return a;
  }
};

void expect(bool ok, const std::string& what, double err, double tol) {
  (ok ? g_passed : g_failed)++;
  std::printf("  %-58s err %.2e tol %.0e %s\n", what.c_str(), err, tol, ok ? "ok" : "FAIL");
}

// max |g - c| / max |c|; NaN matches NaN, infinities must match exactly (else the error is inf).
void expect_close(const std::string& what, const Arr& g, const Arr& c, double tol) {
  double num = 0, den = 1e-30;
  bool bad = g.n() != c.n();
  for (size_t i = 0; !bad && i < c.n(); ++i) {
    const double a = g.at(i), r = c.at(i);
    if (std::isnan(r) || std::isnan(a) || std::isinf(r) || std::isinf(a)) {
      bad |= !(std::isnan(r) && std::isnan(a)) && a != r;
      continue;
    }
    num = std::max(num, std::abs(a - r));
    den = std::max(den, std::abs(r));
  }
  const double err = bad ? INFINITY : num / den;
  expect(err <= tol, what, err, tol);
}
void expect_scalar(const std::string& what, double g, double c, double tol) {
  const double err = g == c ? 0.0 : std::abs(g - c) / std::max(std::abs(c), 1e-300);
  expect(err <= tol, what, err, tol);
}
// Two GPU runs of one op on the same inputs: reproducible means the same bits.
void expect_same(const std::string& what, const Arr& a, const Arr& b) {
  const bool ok = a.bytes == b.bytes;
  expect(ok, what + " (2 runs, bitwise)", ok ? 0.0 : 1.0, 0.0);
}

double tol_out(DType t) { return t == DType::BF16 ? 1e-2 : t == DType::F16 ? 2e-3 : 1e-4; }
std::string shape(std::initializer_list<int64_t> v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

struct Ctx {
  CudaBackend& be;
  CudaNnOps& gpu;
  CpuNnOps cpu;
  ref::Rng rng;
};

void check_gemm(Ctx& c, int64_t m, int64_t n, int64_t k, bool ta, bool tb, DType at, DType bt, DType ct, bool acc,
                float alpha, size_t off = 0) {
  Arr a = rnd(c.rng, m * k, at), b = rnd(c.rng, k * n, bt), c0 = rnd(c.rng, m * n, ct);
  const std::string name = "gemm " + shape({m, n, k}) + (ta ? " T" : " N") + (tb ? "T " : "N ") + dtype_name(at) +
                           "*" + dtype_name(bt) + "->" + dtype_name(ct) + (acc ? " acc" : "") + " alpha " +
                           std::to_string(alpha).substr(0, 5) + (off ? " misaligned" : "");
  Arr want = c0;
  c.cpu.gemm({ta, tb, m, n, k, a.data(), at, b.data(), bt, want.data(), ct, alpha, acc});
  auto run = [&] {
    Dev da(c.be, a, off), db(c.be, b, off), dc(c.be, acc ? c0 : full(m * n, ct, NAN), off);  // NaN: all written
    c.gpu.gemm({ta, tb, m, n, k, da.ptr(), at, db.ptr(), bt, dc.ptr(), ct, alpha, acc});
    return dc.get();
  };
  const Arr got = run();
  expect_close(name, got, want, tol_out(ct));
  expect_same(name, got, run());
}

void check_gemms(Ctx& c) {
  const int64_t sizes[] = {1, 2, 3, 5, 8, 13, 31, 64, 100, 127, 200, 257};
  const float alphas[] = {1.f, -0.75f, 2.5f};
  for (DType at : kTypes)
    for (DType bt : kTypes)
      for (DType ct : kTypes)
        for (int tr = 0; tr < 4; ++tr)
          check_gemm(c, sizes[c.rng.below(12)], sizes[c.rng.below(12)], sizes[c.rng.below(12)], tr & 1, tr & 2, at,
                     bt, ct, c.rng.uniform() < 0.5, alphas[c.rng.below(3)]);
  for (DType ct : kTypes)
    for (bool acc : {false, true}) check_gemm(c, 7, 9, 0, false, false, DType::BF16, DType::BF16, ct, acc, 1.f);
  for (int tr = 0; tr < 4; ++tr) {
    check_gemm(c, 1, 33, 65, tr & 1, tr & 2, DType::BF16, DType::BF16, DType::F32, false, 1.f);
    check_gemm(c, 47, 1, 65, tr & 1, tr & 2, DType::F32, DType::F32, DType::F32, true, 1.f);
    check_gemm(c, 1, 1, 1, tr & 1, tr & 2, DType::F16, DType::F32, DType::BF16, true, -2.f);
    check_gemm(c, 515, 1029, 2051, tr & 1, tr & 2, DType::BF16, DType::BF16, DType::F32, tr == 3, 1.f);
    check_gemm(c, 5, 7, 4099, tr & 1, tr & 2, DType::F32, DType::F32, DType::F32, tr == 1, 0.5f);
    check_gemm(c, 33, 17, 9, tr & 1, tr & 2, DType::BF16, DType::F16, DType::F16, tr >= 2, 1.f, 1);
  }
  // Model shapes: a Q projection (tokens x hidden -> heads x dim), its weight gradient (K = tokens).
  check_gemm(c, 1000, 512, 4096, false, true, DType::BF16, DType::BF16, DType::BF16, false, 1.f);
  check_gemm(c, 512, 4096, 1000, true, false, DType::BF16, DType::BF16, DType::F32, true, 1.f);
  check_gemm(c, 300, 256, 1024, false, true, DType::F32, DType::F32, DType::F32, false, 1.f);
  bool threw = false;  // dimensions past cuBLAS's int range: a clear error before any device work
  try {
    c.gpu.gemm({false, false, int64_t{INT_MAX} + 1, 2, 2, nullptr, DType::F32, nullptr, DType::F32, nullptr, DType::F32});
  } catch (const XattnError& e) {
    threw = e.code() == ErrorCode::InvalidArgument;
  }
  expect(threw, "gemm m > INT_MAX throws InvalidArgument", threw ? 0 : 1, 0);
}

void check_rmsnorm(Ctx& c, int64_t rows, int64_t n, double amp, float eps) {
  for (DType yt : kTypes) {
    const std::string name = "rmsnorm " + shape({rows, n}) + " amp" + std::to_string(amp).substr(0, 5) + " -> " +
                             dtype_name(yt);
    Arr x = rnd(c.rng, rows * n, DType::F32, amp), w = rnd(c.rng, n), y = full(rows * n, yt, 0), rstd = full(rows, DType::F32, 0);
    const RmsNormArgs host{rows, n, eps, x.f(), w.f()};
    c.cpu.rmsnorm_fwd(host, y.data(), yt, rstd.f());
    auto fwd = [&] {
      Dev dx(c.be, x), dw(c.be, w), dy(c.be, full(rows * n, yt, NAN)), dr(c.be, full(rows, DType::F32, NAN));
      c.gpu.rmsnorm_fwd({rows, n, eps, dx.f(), dw.f()}, dy.ptr(), yt, dr.f());
      return std::vector<Arr>{dy.get(), dr.get()};
    };
    const std::vector<Arr> got = fwd(), again = fwd();
    expect_close(name + " y", got[0], y, tol_out(yt));
    expect_close(name + " rstd", got[1], rstd, 1e-6);
    expect_same(name + " y", got[0], again[0]);
    // Backward from the CPU's rstd, dx written in yt (or, float32 only, added to); dw (and dx with acc) start
    // non-zero.
    for (bool acc : {false, true}) {
      if (acc && yt != DType::F32) continue;
      Arr g = rnd(c.rng, rows * n), dx0 = rnd(c.rng, rows * n), dw0 = rnd(c.rng, n), dx = acc ? dx0 : full(rows * n, yt, 0), dw = dw0;
      c.cpu.rmsnorm_bwd(host, rstd.f(), g.f(), dx.data(), yt, acc, dw.f());
      auto bwd = [&] {
        Dev dX(c.be, x), dW(c.be, w), dR(c.be, rstd), dG(c.be, g), ddx(c.be, acc ? dx0 : full(rows * n, yt, NAN)),
            ddw(c.be, dw0);
        c.gpu.rmsnorm_bwd({rows, n, eps, dX.f(), dW.f()}, dR.f(), dG.f(), ddx.ptr(), yt, acc, ddw.f());
        return std::vector<Arr>{ddx.get(), ddw.get()};
      };
      const std::vector<Arr> b1 = bwd(), b2 = bwd();
      const std::string bn = "rmsnorm_bwd " + shape({rows, n}) + (acc ? " acc" : "") + " -> " + dtype_name(yt);
      expect_close(bn + " dx", b1[0], dx, yt == DType::F32 ? 1e-4 : tol_out(yt));
      expect_close(bn + " dw", b1[1], dw, 1e-4);
      expect_same(bn + " dx", b1[0], b2[0]);
      expect_same(bn + " dw", b1[1], b2[1]);
    }
  }
}

void check_gate_and_losses(Ctx& c, int64_t n) {
  const std::string sn = " n" + std::to_string(n);
  for (float gv : {0.f, 0.3f, -1.2f}) {
    Arr x = rnd(c.rng, n), a = rnd(c.rng, n), dout = rnd(c.rng, n), gate = full(1, DType::F32, gv);
    Arr out = full(n, DType::F32, 0), da = out, dgate = full(1, DType::F32, 0.25f);
    c.cpu.gated_residual_fwd(n, x.f(), a.f(), gate.f(), out.f());
    c.cpu.gated_residual_bwd(n, dout.f(), a.f(), gate.f(), da.f(), dgate.f());
    auto run = [&] {
      Dev dX(c.be, x), dA(c.be, a), dD(c.be, dout), dG(c.be, gate), dO(c.be, full(n, DType::F32, NAN)),
          dDA(c.be, full(n, DType::F32, NAN)), dDG(c.be, full(1, DType::F32, 0.25f));
      c.gpu.gated_residual_fwd(n, dX.f(), dA.f(), dG.f(), dO.f());
      c.gpu.gated_residual_bwd(n, dD.f(), dA.f(), dG.f(), dDA.f(), dDG.f());
      return std::vector<Arr>{dO.get(), dDA.get(), dDG.get()};
    };
    const std::vector<Arr> r = run(), r2 = run();
    const std::string name = "gated_residual" + sn + " gate" + std::to_string(gv).substr(0, 4);
    expect_close(name + " out", r[0], out, 1e-6);
    expect_close(name + " da", r[1], da, 1e-6);
    expect_scalar(name + " dgate", r[2].at(0), dgate.at(0), 1e-5);
    expect_same(name + " dgate", r[2], r2[2]);
  }
  for (DType tt : kTypes)
    for (bool with_grad : {false, true}) {
      Arr pred = rnd(c.rng, n), target = rnd(c.rng, n, tt), grad = full(n, DType::F32, 0);
      const float scale = static_cast<float>(c.rng.uniform() + 0.1);
      const double want = c.cpu.squared_error(n, pred.f(), target.data(), tt, scale, with_grad ? grad.f() : nullptr);
      double got[2];
      Arr ggrad;
      for (double& s : got) {
        Dev dP(c.be, pred), dT(c.be, target), dG(c.be, full(n, DType::F32, NAN));
        s = c.gpu.squared_error(n, dP.f(), dT.ptr(), tt, scale, with_grad ? dG.f() : nullptr);
        ggrad = dG.get();
      }
      const std::string name = std::string("squared_error") + sn + " target " + dtype_name(tt) + (with_grad ? " +grad" : "");
      expect_scalar(name, got[0], want, 1e-9);
      expect(got[0] == got[1], name + " (2 runs, bitwise)", got[0] == got[1] ? 0 : 1, 0);
      if (with_grad) expect_close(name + " grad", ggrad, grad, 1e-7);
    }
  Arr x = rnd(c.rng, n, DType::F32, 3.0);
  Dev dx(c.be, x);
  const double s1 = c.gpu.sum_squares(n, dx.f()), s2 = c.gpu.sum_squares(n, dx.f());
  expect_scalar("sum_squares" + sn, s1, c.cpu.sum_squares(n, x.f()), 1e-9);
  expect(s1 == s2, "sum_squares" + sn + " (2 runs, bitwise)", s1 == s2 ? 0 : 1, 0);
}

void check_vector_ops(Ctx& c, int64_t n) {
  const std::string sn = " n" + std::to_string(n);
  Arr x = rnd(c.rng, n), y = rnd(c.rng, n), want = y;
  c.cpu.axpy(n, -1.7f, x.f(), want.f());
  {
    Dev dx(c.be, x), dy(c.be, y);
    c.gpu.axpy(n, -1.7f, dx.f(), dy.f());
    expect_close("axpy" + sn, dy.get(), want, 1e-6);
    c.cpu.scale(n, 0.37f, want.f());
    c.gpu.scale(n, 0.37f, dy.f());
    expect_close("scale" + sn, dy.get(), want, 1e-6);
    c.cpu.fill(n, -3.5f, want.f());
    c.gpu.fill(n, -3.5f, dy.f());
    expect_close("fill" + sn, dy.get(), want, 0);
  }
  // Casts: specials first (infinities, NaN, fp16 overflow and rounding edges, subnormals, -0, bf16 ties).
  const float specials[] = {INFINITY, -INFINITY, NAN, 65504.f, 65519.f, 65520.f, 70000.f, -1e-6f, 6e-8f, 2.9e-8f,
                            3.0e-8f, -0.f, 1e-40f, 3.4e38f, 1.00390625f, 1.01171875f, 0.1f, 5.96e-8f};
  for (DType st : kTypes)
    for (DType dt : kTypes) {
      Arr src = make(n, st, [&](size_t i) {
        return i < 18 ? specials[i] : static_cast<float>(c.rng.normal() * std::exp(c.rng.normal() * 8));
      });
      Arr want_c = full(n, dt, 0);
      c.cpu.cast(n, src.data(), st, want_c.data(), dt);
      Dev ds(c.be, src), dd(c.be, full(n, dt, NAN));
      c.gpu.cast(n, ds.ptr(), st, dd.ptr(), dt);
      expect_close(std::string("cast") + sn + " " + dtype_name(st) + "->" + dtype_name(dt), dd.get(), want_c, 0);
    }
  // AdamW: three steps with their bias corrections, weight decay on.
  Arr p = rnd(c.rng, n), m = full(n, DType::F32, 0), v = m, p0 = p;
  std::vector<Arr> grads;
  for (int t = 0; t < 3; ++t) grads.push_back(rnd(c.rng, n, DType::F32, 0.1 + t));
  auto hp = [](int t) {
    AdamWArgs h;
    h.lr = 1e-2f, h.weight_decay = 0.1f, h.bias1 = 1.f - std::pow(h.beta1, t + 1.f), h.bias2 = 1.f - std::pow(h.beta2, t + 1.f);
    return h;
  };
  for (int t = 0; t < 3; ++t) c.cpu.adamw(n, hp(t), p.f(), grads[t].f(), m.f(), v.f());
  auto run = [&] {
    Dev dp(c.be, p0), dm(c.be, full(n, DType::F32, 0)), dv(c.be, full(n, DType::F32, 0));
    for (int t = 0; t < 3; ++t) {
      Dev dg(c.be, grads[t]);
      c.gpu.adamw(n, hp(t), dp.f(), dg.f(), dm.f(), dv.f());
    }
    return std::vector<Arr>{dp.get(), dm.get(), dv.get()};
  };
  const std::vector<Arr> r = run(), r2 = run();
  expect_close("adamw" + sn + " param", r[0], p, 1e-5);
  expect_close("adamw" + sn + " m", r[1], m, 1e-5);
  expect_close("adamw" + sn + " v", r[2], v, 1e-5);
  expect_same("adamw" + sn + " param", r[0], r2[0]);
  // randn: a shard of a [2, rows, 37] whole at row offset 5 (fast-math sin/cos/log may differ in the last bits).
  const int64_t width = 37, rows = std::max<int64_t>(1, n / (2 * width));
  const rng::ShardLayout layout{rows, 5, rows + 9, width};
  const int64_t cnt = 2 * rows * width;
  for (DType t : kTypes) {
    Arr want_r = full(cnt, t, 0);
    c.cpu.randn(cnt, 0xdeadbeefu, layout, 0.5f, want_r.data(), t);
    Dev dr(c.be, full(cnt, t, NAN));
    c.gpu.randn(cnt, 0xdeadbeefu, layout, 0.5f, dr.ptr(), t);
    // One storage ulp where the fast-math value lands on the other side of a rounding boundary.
    expect_close("randn" + sn + " " + dtype_name(t), dr.get(), want_r, t == DType::F32 ? 1e-5 : 1e-2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGALRM, [](int) {
    const char msg[] = "xattn_nn_check: not done after 300 s (hung kernel?)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
  });
  alarm(300);
  // Each section on its own, so a failure in one (cuBLAS missing, say) does not hide the others.
  auto section = [](const char* name, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("EXCEPTION in %s: %s\n", name, e.what());
      ++g_failed;
    }
  };
  std::unique_ptr<CudaBackend> be;
  section("setup", [&] { be = std::make_unique<CudaBackend>(argc > 1 ? std::atoi(argv[1]) : 0); });
  if (be) {
    CudaNnOps gpu(*be);
    Ctx c{*be, gpu, CpuNnOps{}, ref::Rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 7)};
    std::printf("device %s (%d SMs)\n", be->device_name().c_str(), be->sm_count());
    section("cuBLAS", [&] { std::printf("cuBLAS %s\n", gpu.blas_info().c_str()); });
    section("gemm", [&] { check_gemms(c); });
    section("rmsnorm", [&] {
      for (auto [rows, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {17, 64}, {129, 128}, {1000, 128},
                             {33, 4096}, {5, 5001}, {0, 8}, {4100, 33}})
        check_rmsnorm(c, rows, n, rows == 3 ? 1e-3 : 1.0, rows == 3 ? 1e-6f : 1e-5f);
    });
    section("gate and losses", [&] {
      for (int64_t n : {0, 1, 33, 1000, 4097, (1 << 20) + 3, 3000001}) check_gate_and_losses(c, n);
    });
    section("vector ops", [&] {
      for (int64_t n : {0, 1, 18, 1001, 65537, (1 << 20) + 5}) check_vector_ops(c, n);
    });
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
