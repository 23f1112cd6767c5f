// Standalone GPU check (no Node): every CUDA backend op against an fp64 naive reference (and the attention
// ops also against the CPU backend) on random shapes,
// odd lengths, GQA 1/4/8, masks with fully masked rows, bf16 and fp16 (plus the generic float32 and
// odd-head-dim path). Prints one line per case with max abs / relative L2 errors; exit 1 on any failure.
#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu_backend.h"
#include "core/error.h"
#include "core/transport.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_factory.h"
#include "cuda/kernels.h"
#include "check_kernels_ops.h"
#include "check_kernels_util.h"
#include "reference.h"

using namespace xattn;
using namespace xattn::check;

namespace {

// A kernel that never finishes (a lost mbarrier arrival, say) ends the check at once instead of hanging it.
std::chrono::steady_clock::time_point g_deadline = std::chrono::steady_clock::time_point::max();
void arm_deadline(int seconds) { g_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds); }
bool g_hopper = false;  // the backend runs the sm90 kernels on this device

struct Case {
  DType dt;
  int D;
  int64_t B, Hkv, G, lq, lkv;
  bool mask;
  double amp = 1.0;          // input scale (larger = peakier softmax)
  int max_splits = 0;        // 0 = automatic
  bool all_masked = false;
  int mtiles = 2;            // forward m-tiles per warp
  int transfer_sms = 0;      // grids sized for transfers holding this many SMs alongside
};

// The same block on the CPU backend (another helper's implementation), for a GPU-vs-CPU comparison beside
// the fp64 one. Gradients start at zero here.
struct CpuResult {
  std::vector<double> o, lse, dq, dk, dv;
};
CpuResult run_cpu(const ref::Problem& p, const AttnBlock& blk_dev, const std::vector<double>& lse_f,
                  const std::vector<double>& drow_f) {
  CpuBackend cpu;
  std::vector<void*> owned;
  auto put = [&](const std::vector<double>& v, DType t) {
    const std::vector<uint8_t> bytes = to_bytes(v, t);
    void* ptr = cpu.alloc(bytes.size() + 4);
    cpu.from_host(ptr, bytes.data(), bytes.size());
    owned.push_back(ptr);
    return ptr;
  };
  auto zeros = [&](size_t n) { return static_cast<float*>(put(std::vector<double>(n, 0.0), DType::F32)); };
  const size_t nq = p.q.size(), nk = p.k.size(), ns = lse_f.size();
  void *q = put(p.q, p.d.dtype), *k = put(p.k, p.d.dtype), *v = put(p.v, p.d.dtype), *dout = put(p.dout, p.d.dtype);
  float *o = zeros(nq), *lse = zeros(ns), *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
  float *lse_in = static_cast<float*>(put(lse_f, DType::F32)), *drow_in = static_cast<float*>(put(drow_f, DType::F32));
  AttnBlock blk = blk_dev;
  std::vector<int32_t> mask = p.mask;
  blk.mask = mask.empty() ? nullptr : mask.data();
  cpu.attn_fwd(p.d, blk, AttnFwdIO{q, k, v, o, lse});
  cpu.attn_bwd(p.d, blk, AttnBwdIO{q, k, v, dout, lse_in, drow_in, dq, dk, dv});
  auto get = [&](const float* ptr, size_t n) {
    std::vector<float> h(n);
    cpu.to_host(h.data(), ptr, n * 4);
    return std::vector<double>(h.begin(), h.end());
  };
  CpuResult r{get(o, nq), get(lse, ns), get(dq, nq), get(dk, nk), get(dv, nk)};
  for (void* ptr : owned) cpu.free(ptr);
  return r;
}

// The forward that also writes the final O in the storage dtype (a one-block forward, o_out) into poisoned
// outputs: that O is the float32 O just checked, rounded once (bit for bit), and the LSE is unchanged.
bool check_final_o(CudaBackend& be, const ref::Problem& p, const AttnBlock& blk, const void* q, const void* k,
                   const void* v, Buf& o, Buf& lse, Buf& out, const std::vector<double>& o_f32,
                   const std::vector<double>& lse_f32, const std::vector<double>& o_ref) {
  const DType t = p.d.dtype;
  const size_t nq = o_f32.size(), nstat = lse_f32.size();
  be.fill_f32(o.as<float>(), nq, std::nanf(""));
  be.fill_f32(lse.as<float>(), nstat, std::nanf(""));
  const std::vector<double> nans(nq, std::nan(""));
  upload(be, out.p, nans, t);
  AttnFwdIO io{q, k, v, o.as<float>(), lse.as<float>()};
  io.o_out = out.p;
  be.attn_fwd(p.d, blk, io);
  const std::vector<double> got = download_as(be, out.p, nq, t), got_lse = download_f32(be, lse.as<float>(), nstat);
  std::vector<uint8_t> tmp(4);
  int64_t bad = 0;
  for (size_t i = 0; i < nq; ++i) {
    store_from_f32(tmp.data(), t, 0, static_cast<float>(o_f32[i]));
    bad += !(got[i] == load_as_f32(tmp.data(), t, 0));  // NaN never matches
  }
  for (size_t i = 0; i < nstat; ++i) bad += !(got_lse[i] == lse_f32[i]);  // -inf matches -inf; NaN nothing
  std::printf("  O %s: %lld differ from the float32 O rounded  %s\n", dtype_name(t), static_cast<long long>(bad),
              bad ? "FAIL" : "ok");
  return report("O " + std::string(dtype_name(t)), ref::compare(got, o_ref), tol_fwd(t)) && bad == 0;
}

void run_case(CudaBackend& be, const Case& c, uint64_t seed) {
  ref::Rng rng(seed);
  ref::Problem p;
  p.d.batch = c.B;
  p.d.heads = c.Hkv * c.G;
  p.d.kv_heads = c.Hkv;
  p.d.head_dim = c.D;
  p.d.dtype = c.dt;
  p.lq = c.lq;
  p.lkv = c.lkv;
  p.kv_offset = c.mask ? 500 : 0;
  const size_t nq = c.B * c.lq * p.d.heads * c.D, nk = c.B * c.lkv * c.Hkv * c.D;
  const size_t nstat = c.B * p.d.heads * c.lq;
  p.q = random_values(rng, nq, c.dt, c.amp);
  p.k = random_values(rng, nk, c.dt, c.amp);
  p.v = random_values(rng, nk, c.dt, 1.0);
  p.dout = random_values(rng, nq, c.dt, 1.0);
  if (c.mask) {
    p.mask.resize(c.B * c.lq * 2);
    for (int64_t r = 0; r < c.B * c.lq; ++r) {
      int64_t beg, end;
      if (c.all_masked || rng.uniform() < 0.15) {  // fully masked: empty range, or one outside this block
        beg = rng.uniform() < 0.5 ? p.kv_offset + rng.below(c.lkv) : p.kv_offset + c.lkv + 3;
        end = rng.uniform() < 0.5 ? beg : beg + 5;
        if (end > beg && beg < p.kv_offset + c.lkv) end = beg;
      } else {
        beg = p.kv_offset - c.lkv / 4 + rng.below(c.lkv);
        end = beg + 1 + rng.below(c.lkv);
      }
      p.mask[r * 2] = static_cast<int32_t>(beg);
      p.mask[r * 2 + 1] = static_cast<int32_t>(end);
    }
  }
  std::printf("case %-4s D%-3d B%lld H%lld Hkv%lld lq%-4lld lkv%-5lld mask%d%s amp%.0f splits%s%s mt%d seed %llu\n",
              dtype_name(c.dt), c.D, (long long)c.B, (long long)(c.Hkv * c.G), (long long)c.Hkv, (long long)c.lq,
              (long long)c.lkv, c.mask ? 1 : 0, c.all_masked ? "(all)" : "", c.amp,
              c.max_splits ? std::to_string(c.max_splits).c_str() : "auto",
              c.transfer_sms ? ("(beside " + std::to_string(c.transfer_sms) + " SMs)").c_str() : "", c.mtiles,
              (unsigned long long)seed);

  std::vector<double> o_ref, lse_ref;
  ref::forward(p, o_ref, lse_ref);
  const size_t es = dtype_size(c.dt);
  Buf q(be, nq * es), k(be, nk * es), v(be, nk * es), dout(be, nq * es), ostore(be, nq * es);
  Buf o(be, nq * 4), lse(be, nstat * 4), drow(be, nstat * 4), dq(be, nq * 4), dk(be, nk * 4), dv(be, nk * 4);
  Buf mask(be, p.mask.size() * 4 + 4);
  upload(be, q.p, p.q, c.dt);
  upload(be, k.p, p.k, c.dt);
  upload(be, v.p, p.v, c.dt);
  upload(be, dout.p, p.dout, c.dt);
  if (c.mask) be.from_host(mask.p, p.mask.data(), p.mask.size() * 4);
  be.set_max_splits(c.max_splits);
  be.set_fwd_mtiles(c.mtiles);
  be.set_transfer_sms(c.transfer_sms);
  AttnBlock blk{c.lq, c.lkv, p.kv_offset, c.mask ? mask.as<int32_t>() : nullptr};
  bool ok = true;

  // row_dot on O as stored in the dtype.
  std::vector<double> o_st(nq), drow_ref(nstat, 0.0);
  {
    std::vector<uint8_t> tmp(4);
    for (size_t i = 0; i < nq; ++i) {
      store_from_f32(tmp.data(), c.dt, 0, static_cast<float>(o_ref[i]));
      o_st[i] = load_as_f32(tmp.data(), c.dt, 0);
    }
    const int64_t H = p.d.heads;
    for (int64_t w = 0; w < c.B * c.lq * H; ++w) {
      const int64_t h = w % H, i = (w / H) % c.lq, b = w / (H * c.lq);
      double s = 0;
      for (int64_t d = 0; d < c.D; ++d) s += p.dout[w * c.D + d] * o_st[w * c.D + d];
      drow_ref[(b * H + h) * c.lq + i] = s;
    }
  }
  upload(be, ostore.p, o_st, c.dt);
  be.row_dot(p.d, c.lq, dout.p, ostore.p, drow.as<float>());
  ok &= report("rowdot", ref::compare(download_f32(be, drow.as<float>(), nstat), drow_ref), 1e-5);

  // Backward accumulates onto random starting gradients; the reference gets the same lse/drow floats.
  std::vector<double> lse_f(nstat), drow_f(nstat);
  std::vector<float> lse_h(nstat), drow_h(nstat);
  for (size_t i = 0; i < nstat; ++i) {
    lse_f[i] = lse_h[i] = static_cast<float>(lse_ref[i]);
    drow_f[i] = drow_h[i] = static_cast<float>(drow_ref[i]);
  }
  const std::vector<double> dq0 = random_values(rng, nq, DType::F32, 1.0),
                            dk0 = random_values(rng, nk, DType::F32, 1.0), dv0 = random_values(rng, nk, DType::F32, 1.0);
  std::vector<double> dq_ref, dk_ref, dv_ref;
  ref::backward(p, lse_f, drow_f, dq_ref, dk_ref, dv_ref);
  const CpuResult cr = run_cpu(p, blk, lse_f, drow_f);
  auto minus = [](std::vector<double> a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
    return a;
  };

  // Every kernel family the backend would pick for this case on this device: the Hopper kernels where
  // they apply, and always the portable ones.
  const bool hopper = g_hopper && (c.dt == DType::BF16 || c.dt == DType::F16) && (c.D == 64 || c.D == 128) &&
                      64 % c.G == 0;
  for (int pass = hopper ? 0 : 1; pass < 2; ++pass) {
    be.set_sm90(pass == 0);
    std::printf(" kernels: %s\n", pass == 0 ? "sm90 (wgmma)" : "portable");
    // Forward into poisoned outputs: every element must be written.
    be.fill_f32(o.as<float>(), nq, std::nanf(""));
    be.fill_f32(lse.as<float>(), nstat, std::nanf(""));
    be.attn_fwd(p.d, blk, AttnFwdIO{q.p, k.p, v.p, o.as<float>(), lse.as<float>()});
    const std::vector<double> o_gpu = download_f32(be, o.as<float>(), nq),
                              lse_gpu = download_f32(be, lse.as<float>(), nstat);
    ok &= report("O", ref::compare(o_gpu, o_ref), tol_fwd(c.dt));
    ok &= report("LSE", ref::compare(lse_gpu, lse_ref), 2e-3, true);

    ok &= report("O~cpu", ref::compare(o_gpu, cr.o), 2 * tol_fwd(c.dt));
    ok &= report("L~cpu", ref::compare(lse_gpu, cr.lse), 4e-3, true);
    ok &= check_final_o(be, p, blk, q.p, k.p, v.p, o, lse, ostore, o_gpu, lse_gpu, o_ref);

    // The sm90 backward has two schedules (dQ product in the same tile or one tile late): check both.
    for (int lag = pass == 0 ? 0 : 1; lag < 2; ++lag) {
      if (pass == 0) {
        cuda::sm90_set_bwd_lag(lag);
        std::printf(" backward: dQ lag %d\n", lag);
      }
      be.from_host(lse.p, lse_h.data(), nstat * 4);
      be.from_host(drow.p, drow_h.data(), nstat * 4);
      upload(be, dq.p, dq0, DType::F32);
      upload(be, dk.p, dk0, DType::F32);
      upload(be, dv.p, dv0, DType::F32);
      be.attn_bwd(p.d, blk, AttnBwdIO{q.p, k.p, v.p, dout.p, lse.as<float>(), drow.as<float>(), dq.as<float>(),
                                      dk.as<float>(), dv.as<float>()});
      const std::vector<double> dq_gpu = minus(download_f32(be, dq.as<float>(), nq), dq0),
                                dk_gpu = minus(download_f32(be, dk.as<float>(), nk), dk0),
                                dv_gpu = minus(download_f32(be, dv.as<float>(), nk), dv0);
      // The same with dK/dV written rather than added (a schedule's first block): poisoned starts.
      upload(be, dq.p, dq0, DType::F32);
      be.fill_f32(dk.as<float>(), nk, std::nanf(""));
      be.fill_f32(dv.as<float>(), nk, std::nanf(""));
      AttnBwdIO fresh{q.p, k.p, v.p, dout.p, lse.as<float>(), drow.as<float>(), dq.as<float>(), dk.as<float>(),
                      dv.as<float>()};
      fresh.accumulate_dkv = false;
      be.attn_bwd(p.d, blk, fresh);
      ok &= report("dK write", ref::compare(download_f32(be, dk.as<float>(), nk), dk_ref), tol_bwd(c.dt));
      ok &= report("dV write", ref::compare(download_f32(be, dv.as<float>(), nk), dv_ref), tol_bwd(c.dt));
      ok &= report("dQ", ref::compare(dq_gpu, dq_ref), tol_bwd(c.dt));
      ok &= report("dK", ref::compare(dk_gpu, dk_ref), tol_bwd(c.dt));
      ok &= report("dV", ref::compare(dv_gpu, dv_ref), tol_bwd(c.dt));
      // GPU against the CPU backend: both approximate the fp64 result, so allow the sum of their tolerances.
      ok &= report("dQ~cpu", ref::compare(dq_gpu, cr.dq), 2 * tol_bwd(c.dt));
      ok &= report("dK~cpu", ref::compare(dk_gpu, cr.dk), 2 * tol_bwd(c.dt));
      ok &= report("dV~cpu", ref::compare(dv_gpu, cr.dv), 2 * tol_bwd(c.dt));
      // The sm90 backward over KV head ranges (head-by-head experiments): two launches, each writing only
      // its heads' dK/dV into poisoned ones, together give the whole block's gradients.
      cuda::AttnGeom g = cuda::attn_geom(p.d, blk);
      if (pass == 0 && c.Hkv >= 2 && c.lq > 0 && c.lkv > 0 && cuda::sm90_supported(c.dt, g)) {
        upload(be, dq.p, dq0, DType::F32);
        be.fill_f32(dk.as<float>(), nk, std::nanf(""));
        be.fill_f32(dv.as<float>(), nk, std::nanf(""));
        cuda::BwdArgs a{q.p, k.p, v.p, dout.p, lse.as<float>(), drow.as<float>(), dq.as<float>(), dk.as<float>(), dv.as<float>()};
        a.dkv_overwrite = true;
        a.ctas = be.sm_count();  // d64's persistent CTAs walk the range (d128 takes a CTA a tile)
        const int half = static_cast<int>(c.Hkv / 2);
        for (const auto& [begin, count] : {std::pair{0, half}, std::pair{half, static_cast<int>(c.Hkv) - half}}) {
          g.kv_head_begin = begin;
          g.kv_head_count = count;
          cuda::sm90_attn_bwd(c.dt, g, a, be.stream());
        }
        ok &= report("dQ heads", ref::compare(minus(download_f32(be, dq.as<float>(), nq), dq0), dq_ref), tol_bwd(c.dt));
        ok &= report("dK heads", ref::compare(download_f32(be, dk.as<float>(), nk), dk_ref), tol_bwd(c.dt));
        ok &= report("dV heads", ref::compare(download_f32(be, dv.as<float>(), nk), dv_ref), tol_bwd(c.dt));
      }
    }
    cuda::sm90_set_bwd_lag(-1);
  }
  be.set_sm90(g_hopper);
  if (!ok) ++g_failures;
}

}  // namespace

int main() {
  const int n = cuda_device_count();
  if (n == 0) {
    std::printf("no CUDA device: nothing to check\n");
    return 2;
  }
  CudaBackend be(0);
  g_hopper = be.sm90();
  be.add_wait_hook([] {
    if (std::chrono::steady_clock::now() < g_deadline) return;
    std::printf("HANG: a GPU operation did not finish within the deadline  FAIL\n");
    std::fflush(stdout);
    std::_Exit(3);
  });
  std::printf("device: %s (%d SMs), sm90 kernels %s\n", be.device_name().c_str(), be.sm_count(),
              g_hopper ? "on" : "not available");
  std::vector<Case> cases;
  struct Shape { int64_t lq, lkv, G; bool mask; int64_t B; };
  const Shape shapes[] = {{1, 4097, 8, false, 1}, {7, 1000, 4, true, 2}, {100, 33, 1, true, 1},
                          {100, 4097, 4, true, 1}, {7, 33, 8, false, 1}, {1, 1000, 1, true, 2},
                          {100, 1000, 8, false, 1}};
  for (DType t : {DType::BF16, DType::F16})
    for (int D : {64, 128})
      for (const auto& s : shapes) cases.push_back(Case{t, D, s.B, 2, s.G, s.lq, s.lkv, s.mask});
  cases.push_back(Case{DType::BF16, 128, 1, 2, 4, 100, 4097, true, 4.0});           // peaky softmax
  cases.push_back(Case{DType::BF16, 128, 1, 2, 4, 100, 4097, true, 1.0, 1});        // no KV split
  cases.push_back(Case{DType::F16, 64, 1, 2, 8, 7, 4097, false, 1.0, 1});           // no KV split
  cases.push_back(Case{DType::BF16, 64, 1, 2, 4, 7, 1000, true, 1.0, 0, true});     // every row masked
  cases.push_back(Case{DType::BF16, 128, 1, 2, 4, 100, 4097, true, 1.0, 0, false, 1});  // one m-tile per warp
  cases.push_back(Case{DType::F16, 64, 2, 2, 4, 7, 1000, true, 1.0, 0, false, 1});
  cases.push_back(Case{DType::BF16, 64, 1, 2, 8, 100, 1000, false, 1.0, 1, false, 1});
  cases.push_back(Case{DType::F16, 128, 1, 2, 1, 100, 33, true, 1.0, 1, false, 1});
  cases.push_back(Case{DType::BF16, 128, 1, 2, 8, 300, 700, false});                // many query tiles
  cases.push_back(Case{DType::BF16, 128, 1, 2, 4, 100, 40000, true, 1.0, 0, false, 2, Transport::kManyTransferSms});  // 4-wave split
  cases.push_back(Case{DType::BF16, 128, 1, 2, 4, 100, 40000, true, 1.0, 0, false, 2, 2});  // grid for 2 SMs fewer
  cases.push_back(Case{DType::F16, 64, 1, 1, 16, 20, 2000, true});                  // GQA 16
  // d64's persistent grid with more K/V tiles than CTAs: 626 tiles, 4 query tiles each (the next K/V load
  // behind two stages); 628 tiles of one query tile each (the load after the tile's stages); a grid 2 SMs short.
  cases.push_back(Case{DType::BF16, 64, 1, 2, 4, 100, 40000, true});
  cases.push_back(Case{DType::F16, 64, 2, 2, 4, 7, 20000, false});
  cases.push_back(Case{DType::BF16, 64, 1, 2, 4, 100, 40000, false, 1.0, 0, false, 2, 2});
  cases.push_back(Case{DType::BF16, 128, 1, 2, 3, 33, 1000, true});                 // GQA 3: portable on Hopper
  cases.push_back(Case{DType::BF16, 96, 1, 2, 4, 7, 1000, true});                   // generic: odd head dim
  cases.push_back(Case{DType::F16, 40, 2, 1, 1, 33, 100, false});                   // generic
  cases.push_back(Case{DType::F32, 64, 1, 2, 4, 100, 1000, true});                  // generic float32
  cases.push_back(Case{DType::F32, 128, 1, 1, 8, 7, 4097, false});                  // generic float32
  // XATTN_CHECK_EVERY=k runs every k-th case (for slow tools such as compute-sanitizer).
  const char* every_env = std::getenv("XATTN_CHECK_EVERY");
  const size_t every = every_env ? std::max(1, std::atoi(every_env)) : 1;
  uint64_t seed = 0;
  size_t ran = 0;
  for (const auto& c : cases) {
    if (seed++ % every != 0) continue;
    ++ran;
    arm_deadline(60);
    try {
      run_case(be, c, seed);
    } catch (const std::exception& e) {
      std::printf("  EXCEPTION %s  FAIL\n", e.what());
      ++g_failures;
    }
  }
  arm_deadline(60);
  int others = 0;
  try {
    others = check_elementwise_ops(be);
  } catch (const std::exception& e) {
    std::printf("EXCEPTION %s  FAIL\n", e.what());
    ++g_failures;
  }
  std::printf("%d passed, %d failed\n", static_cast<int>(ran) + others - g_failures, g_failures);
  return g_failures ? 1 : 0;
}
