// The CUDA backend's element-wise ops against exact expectations (part of xattn_cuda_check): the LSE merge
// against fp64, the float16 partial wire form and the casts bit for bit against the CPU backend and the
// host conversions, and the rejection of bad dims.
#include "check_kernels_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "check_kernels_util.h"
#include "core/cpu_backend.h"
#include "core/error.h"

namespace xattn::check {
namespace {

void check_lse_merge(CudaBackend& be) {
  ref::Rng rng(7);
  AttnDims d;
  d.batch = 2; d.heads = 3; d.kv_heads = 1; d.head_dim = 40;
  const int64_t lq = 37, no = d.batch * lq * d.heads * d.head_dim, ns = d.batch * d.heads * lq;
  std::vector<double> ao = random_values(rng, no, DType::F32, 1), po = random_values(rng, no, DType::F32, 1);
  std::vector<double> al(ns), pl(ns);
  for (int64_t i = 0; i < ns; ++i) {
    al[i] = rng.uniform() < 0.2 ? -kInf : rng.normal() * 5;
    pl[i] = rng.uniform() < 0.2 ? -kInf : rng.normal() * 5;
    if (i % 11 == 0) al[i] = pl[i] = -kInf;
  }
  for (int64_t w = 0; w < d.batch * lq * d.heads; ++w) {  // rows with -inf LSE hold O = 0
    const int64_t h = w % d.heads, i = (w / d.heads) % lq, b = w / (d.heads * lq), st = (b * d.heads + h) * lq + i;
    for (int64_t c = 0; c < d.head_dim; ++c) {
      if (std::isinf(al[st])) ao[w * d.head_dim + c] = 0;
      if (std::isinf(pl[st])) po[w * d.head_dim + c] = 0;
    }
  }
  std::vector<double> eo(no), el(ns);
  for (int64_t w = 0; w < d.batch * lq * d.heads; ++w) {
    const int64_t h = w % d.heads, i = (w / d.heads) % lq, b = w / (d.heads * lq), st = (b * d.heads + h) * lq + i;
    const double mx = std::max(al[st], pl[st]);
    double wa = 0, wp = 0;
    el[st] = -kInf;
    if (!std::isinf(mx)) {
      const double s = std::exp(al[st] - mx) + std::exp(pl[st] - mx);
      wa = std::exp(al[st] - mx) / s;
      wp = std::exp(pl[st] - mx) / s;
      el[st] = mx + std::log(s);
    }
    for (int64_t c = 0; c < d.head_dim; ++c)
      eo[w * d.head_dim + c] = wa * ao[w * d.head_dim + c] + wp * po[w * d.head_dim + c];
  }
  Buf bao(be, no * 4), bpo(be, no * 4), bal(be, ns * 4), bpl(be, ns * 4);
  upload(be, bao.p, ao, DType::F32);
  upload(be, bpo.p, po, DType::F32);
  upload(be, bal.p, al, DType::F32);
  upload(be, bpl.p, pl, DType::F32);
  be.lse_merge(d, lq, bao.as<float>(), bal.as<float>(), bpo.as<float>(), bpl.as<float>());
  std::printf("lse_merge B2 H3 lq37 D40 (with -inf rows)\n");
  bool ok = report("O", ref::compare(download_f32(be, bao.as<float>(), no), eo), 1e-5);
  ok &= report("LSE", ref::compare(download_f32(be, bal.as<float>(), ns), el), 1e-5, true);
  if (!ok) ++g_failures;
}

// The partial O's float16 wire form must be the CPU backend's, bit for bit (NaN as any NaN): rows of
// ordinary, huge, tiny, zero and inf/NaN values, D = 40 and 128.
void check_partial_wire(CudaBackend& be) {
  CpuBackend cpu;
  ref::Rng rng(9);
  for (int64_t D : {40, 128}) {
    AttnDims d;
    d.batch = 2; d.heads = 3; d.kv_heads = 1; d.head_dim = D;
    const int64_t lq = 19, rows = d.batch * lq * d.heads, no = rows * D, ns = rows;
    std::vector<float> o(no);
    for (int64_t w = 0; w < rows; ++w)
      for (int64_t c = 0; c < D; ++c) {
        const double mag[] = {1, 1e30, 1e-30, 0, std::pow(10.0, -static_cast<double>(c % 40))};
        o[w * D + c] = static_cast<float>(rng.normal() * mag[w % 5]);
      }
    o[6 * D + 3] = INFINITY;
    o[7 * D + 5] = NAN;
    std::vector<uint16_t> want_wire(no), got_wire(no);
    std::vector<float> want_scale(ns), got_scale(ns), want_back(no), got_back(no);
    cpu.partial_to_wire(d, lq, o.data(), want_wire.data(), want_scale.data());
    cpu.partial_from_wire(d, lq, want_wire.data(), want_scale.data(), want_back.data());
    Buf bo(be, no * 4), bw(be, no * 2), bs(be, ns * 4), bb(be, no * 4);
    be.from_host(bo.p, o.data(), no * 4);
    be.partial_to_wire(d, lq, bo.as<float>(), static_cast<uint16_t*>(bw.p), bs.as<float>());
    be.partial_from_wire(d, lq, static_cast<uint16_t*>(bw.p), bs.as<float>(), bb.as<float>());
    be.to_host(got_wire.data(), bw.p, no * 2);
    be.to_host(got_scale.data(), bs.p, ns * 4);
    be.to_host(got_back.data(), bb.p, no * 4);
    const auto is_nan16 = [](uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); };
    int64_t bad = 0;
    for (int64_t i = 0; i < no; ++i) {
      const bool nan = is_nan16(want_wire[i]) && is_nan16(got_wire[i]) && std::isnan(want_back[i]) && std::isnan(got_back[i]);
      if (!nan && (want_wire[i] != got_wire[i] || std::memcmp(&want_back[i], &got_back[i], 4) != 0)) ++bad;
    }
    for (int64_t i = 0; i < ns; ++i) bad += want_scale[i] != got_scale[i];
    std::printf("partial O to float16 wire and back, B2 H3 lq19 D%lld: %lld mismatches with the CPU  %s\n",
                static_cast<long long>(D), static_cast<long long>(bad), bad ? "FAIL" : "ok");
    if (bad) ++g_failures;
  }
}

void check_casts(CudaBackend& be) {
  ref::Rng rng(11);
  const size_t n = 10007;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(rng.normal() * std::pow(10.0, rng.uniform() * 16 - 10));
  const float specials[] = {0.f, -0.f, INFINITY, -INFINITY, 65504.f, 65520.f, 1e-8f, -3e38f, 5.96e-8f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(float); ++i) x[i] = specials[i];
  Buf src(be, n * 4), mid(be, n * 2), back(be, n * 4);
  be.from_host(src.p, x.data(), n * 4);
  for (DType t : {DType::BF16, DType::F16}) {
    be.cast_from_f32(t, src.as<float>(), mid.p, n);
    be.cast_to_f32(t, mid.p, back.as<float>(), n);
    std::vector<uint16_t> h16(n);
    std::vector<float> hb(n);
    be.to_host(h16.data(), mid.p, n * 2);
    be.to_host(hb.data(), back.p, n * 4);
    int64_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      uint16_t want = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
      float want_back = t == DType::BF16 ? bf16_to_f32(want) : f16_to_f32(want);
      if (h16[i] != want || std::memcmp(&hb[i], &want_back, 4) != 0) ++bad;
    }
    std::printf("cast %s round trip of %zu values: %lld mismatches  %s\n", dtype_name(t), n, (long long)bad,
                bad ? "FAIL" : "ok");
    if (bad) ++g_failures;
  }
}

void check_errors(CudaBackend& be) {
  AttnDims d;
  d.heads = 6; d.kv_heads = 4; d.head_dim = 64; d.dtype = DType::BF16;
  bool ok = false;
  try {
    be.attn_fwd(d, AttnBlock{1, 1, 0, nullptr}, AttnFwdIO{nullptr, nullptr, nullptr, nullptr, nullptr});
  } catch (const XattnError& e) {
    ok = e.code() == ErrorCode::InvalidArgument;
    std::printf("bad dims rejected: %s\n", e.what());
  }
  if (!ok) { std::printf("bad dims NOT rejected  FAIL\n"); ++g_failures; }
}

}  // namespace

int check_elementwise_ops(CudaBackend& be) {
  check_lse_merge(be);
  check_partial_wire(be);  // D 40 and 128
  check_casts(be);         // bf16 and fp16
  check_errors(be);
  return 6;
}

}  // namespace xattn::check
