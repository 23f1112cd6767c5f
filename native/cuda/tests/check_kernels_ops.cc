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

// merge_final (the forward's last merge): rows [r0, r0 + n) of the accumulator (ao, al, on the device at acc_o,
// acc_l) with a part of n rows taken from po, pl, as float32 and as the float16 wire form, into a poisoned output
// in float32 and bf16. The expectation is fp64's merge of the part as it arrives (the wire decoded); rows
// outside the range and the accumulator stay untouched.
void check_merge_final(CudaBackend& be, const AttnDims& d, int64_t lq, const std::vector<double>& ao,
                       const std::vector<double>& al, const std::vector<double>& po, const std::vector<double>& pl,
                       const float* acc_o, const float* acc_l) {
  const int64_t r0 = 10, n = 20, H = d.heads, D = d.head_dim, B = d.batch;
  const int64_t no = B * lq * H * D, ns = B * H * lq, cn = B * n * H * D, cs = B * H * n;
  std::vector<float> co(cn), cl(cs);  // the part's rows, as a chunk [B, n, H, D] and [B, H, n]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) {
        cl[(b * H + h) * n + i] = static_cast<float>(pl[(b * H + h) * lq + r0 + i]);
        for (int64_t c = 0; c < D; ++c)
          co[((b * n + i) * H + h) * D + c] = static_cast<float>(po[((b * lq + r0 + i) * H + h) * D + c]);
      }
  CpuBackend cpu;
  std::vector<uint16_t> wire(cn);
  std::vector<float> scale(cs), decoded(cn);
  cpu.partial_to_wire(d, n, co.data(), wire.data(), scale.data());
  cpu.partial_from_wire(d, n, wire.data(), scale.data(), decoded.data());
  Buf bco(be, cn * 4), bcl(be, cs * 4), bw(be, cn * 2), bs(be, cs * 4), out(be, no * 4), out_l(be, ns * 4);
  be.from_host(bco.p, co.data(), cn * 4);
  be.from_host(bcl.p, cl.data(), cs * 4);
  be.from_host(bw.p, wire.data(), cn * 2);
  be.from_host(bs.p, scale.data(), cs * 4);
  float poison;  // NaN read as float32 and as either bf16 half
  const uint32_t nan_bits = 0x7fc07fc0u;
  std::memcpy(&poison, &nan_bits, 4);
  for (const bool packed : {false, true})
    for (const DType t : {DType::F32, DType::BF16}) {
      const std::vector<float>& part = packed ? decoded : co;
      std::vector<double> eo(cn), el(cs), go(cn), gl(cs);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) {
            const int64_t st = (b * H + h) * lq + r0 + i, pst = (b * H + h) * n + i, w = (b * lq + r0 + i) * H + h;
            const int64_t pw = (b * n + i) * H + h;
            const double la = al[st], lp = cl[pst], mx = std::max(la, lp);
            double wa = 0, wp = 0;
            el[pst] = -kInf;
            if (!std::isinf(mx)) {
              const double sum = std::exp(la - mx) + std::exp(lp - mx);
              wa = std::exp(la - mx) / sum;
              wp = std::exp(lp - mx) / sum;
              el[pst] = mx + std::log(sum);
            }
            for (int64_t c = 0; c < D; ++c) eo[pw * D + c] = wa * ao[w * D + c] + wp * part[pw * D + c];
          }
      AttnDims dt = d;
      dt.dtype = t;
      be.fill_f32(out.as<float>(), no, poison);
      be.fill_f32(out_l.as<float>(), ns, std::nanf(""));
      HomePartial hp;
      hp.lse = bcl.as<float>();
      if (packed) {
        hp.wire = static_cast<const uint16_t*>(bw.p);
        hp.scale = bs.as<float>();
      } else {
        hp.o = bco.as<float>();
      }
      be.merge_final(dt, lq, r0, n, acc_o, acc_l, hp, out.p, out_l.as<float>());
      std::vector<uint8_t> raw(no * 4);
      std::vector<float> lse(ns);
      be.to_host(raw.data(), out.p, no * dtype_size(t));
      be.to_host(lse.data(), out_l.p, ns * 4);
      int64_t touched = 0;  // output rows outside [r0, r0 + n) that lost their NaN
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < lq; ++i)
          for (int64_t h = 0; h < H; ++h) {
            const bool in = i >= r0 && i < r0 + n;
            const int64_t st = (b * H + h) * lq + i, w = (b * lq + i) * H + h;
            if (in) gl[(b * H + h) * n + i - r0] = lse[st];
            for (int64_t c = 0; c < D; ++c) {
              const float v = load_as_f32(raw.data(), t, static_cast<size_t>(w * D + c));
              if (in) go[((b * n + i - r0) * H + h) * D + c] = v;
              else touched += !std::isnan(v);
            }
            if (!in) touched += !std::isnan(lse[st]);
          }
      std::printf("merge_final rows %lld..%lld of %lld, part %s, out %s\n", (long long)r0, (long long)(r0 + n), (long long)lq,
                  packed ? "float16 wire" : "float32", dtype_name(t));
      bool ok = report("O", ref::compare(go, eo), t == DType::F32 ? 1e-5 : 1e-2);
      ok &= report("LSE", ref::compare(gl, el), 1e-5, true);
      ok &= report("acc kept", ref::compare(download_f32(be, acc_o, no), ao), 0);
      ok &= touched == 0;
      if (touched) std::printf("  %lld values outside the rows written  FAIL\n", (long long)touched);
      if (!ok) ++g_failures;
    }
}

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
  check_merge_final(be, d, lq, ao, al, po, pl, bao.as<float>(), bal.as<float>());
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
  check_lse_merge(be);     // and merge_final: 4 checks
  check_partial_wire(be);  // D 40 and 128
  check_casts(be);         // bf16 and fp16
  check_errors(be);
  return 10;
}

}  // namespace xattn::check
