// Kernel benchmark (no Node): our forward and forward+backward TFLOP/s at the shapes, one JSON
// line per shape. flops: fwd = 4*B*H*Lq*Lkv*D, fwd+bwd = 3.5 * fwd (bwd = 2.5 * fwd).
// fwd+bwd times what a training step runs: attn_fwd, row_dot, zeroing the fp32 grads, attn_bwd.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels.h"
#include "batch_timing.h"
#include "device_fill.h"

using namespace xattn;

namespace {

struct Shape { int64_t B, H, Hkv, D, lq, lkv; };

// Calls a batch queues back to back when $XATTN_BENCH_QUEUE is set (0: one call per timing).
int queue_depth() {
  const char* q = std::getenv("XATTN_BENCH_QUEUE");
  return q ? std::max(0, std::atoi(q)) : 0;
}

// Median ms of one call. Per call (the default): events around each call, the device idle between calls,
// so short runs see boost clocks. Queued ($XATTN_BENCH_QUEUE=N): the mean over N calls queued back to back,
// median of three batches after one untimed batch (sustained load: the card at its power cap; bench:gpu and
// cudnn_baseline.py also warm up 2 s first, so a case does not inherit the heat of the one before).
template <typename F>
double median_ms(CudaBackend& be, int iters, F body) {
  body();  // warm-up
  body();
  be.synchronize();
  const int queue = queue_depth();
  return queue > 0 ? batch_median_ms(be, 3, queue, body) : batch_median_ms(be, iters, 1, body);
}

// "32:8:128:2048:32768,16:16:64:1024:65536" -> shapes (batch 1).
bool parse_shapes(const char* text, std::vector<Shape>& out) {
  std::vector<Shape> parsed;
  for (const char* p = text; *p;) {
    long long h, hk, dd, lq, lkv;
    int used = 0;
    if (std::sscanf(p, "%lld:%lld:%lld:%lld:%lld%n", &h, &hk, &dd, &lq, &lkv, &used) != 5) return false;
    if (h < 1 || hk < 1 || h % hk || (dd != 64 && dd != 128) || lq < 1 || lkv < 1) return false;
    parsed.push_back({1, h, hk, dd, lq, lkv});
    p += used;
    if (*p == ',') ++p;
    else if (*p) return false;
  }
  if (parsed.empty()) return false;
  out = parsed;
  return true;
}

constexpr const char* kPaths[] = {"sm90", "sm90lag0", "mma"};

// "sm90,mma" -> which of kPaths to time; false on an unknown or empty name.
bool parse_paths(const char* text, bool (&on)[3]) {
  bool parsed[3] = {false, false, false};
  std::string list(text);
  for (size_t at = 0; at <= list.size();) {
    const size_t end = std::min(list.find(',', at), list.size());
    const std::string name = list.substr(at, end - at);
    const auto* hit = std::find_if(std::begin(kPaths), std::end(kPaths), [&](const char* p) { return name == p; });
    if (hit == std::end(kPaths)) return false;
    parsed[hit - std::begin(kPaths)] = true;
    at = end + 1;
  }
  std::copy(std::begin(parsed), std::end(parsed), on);
  return true;
}

}  // namespace

// Usage: xattn_cuda_bench [iters] [only] [H:Hkv:D:lq:lkv,...] [paths]
//   only: run just that shape of the list (for profilers; -1: all); the list replaces the shapes.
//   paths: which kernels to time, of sm90,sm90lag0,mma (default all; the sm90 ones only on Hopper).
//   XATTN_BENCH_QUEUE=N: time batches of N queued calls (sustained load) instead of single calls.
int run(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 10;
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;
  std::vector<Shape> shapes = {{1, 32, 8, 128, 2048, 32768}, {1, 32, 8, 128, 512, 131072}, {1, 16, 16, 64, 1024, 65536}};
  if (argc > 3 && !parse_shapes(argv[3], shapes)) {
    std::fprintf(stderr, "bad shape list '%s': expected H:Hkv:D:lq:lkv[,H:Hkv:D:lq:lkv...]\n", argv[3]);
    return 2;
  }
  bool path_on[3] = {true, true, true};
  if (argc > 4 && !parse_paths(argv[4], path_on)) {
    std::fprintf(stderr, "bad path list '%s': expected names from sm90,sm90lag0,mma\n", argv[4]);
    return 2;
  }
  CudaBackend be(0);
  const bool hopper = be.sm90();
  for (int si = 0; si < static_cast<int>(shapes.size()); ++si) {
    if (only >= 0 && si != only) continue;
    const Shape& s = shapes[si];
    AttnDims d;
    d.batch = s.B; d.heads = s.H; d.kv_heads = s.Hkv; d.head_dim = s.D; d.dtype = DType::BF16;
    const size_t nq = s.B * s.lq * s.H * s.D, nk = s.B * s.lkv * s.Hkv * s.D, ns = s.B * s.H * s.lq;
    void* q = be.alloc(nq * 2); void* k = be.alloc(nk * 2); void* v = be.alloc(nk * 2);
    void* dout = be.alloc(nq * 2); void* o16 = be.alloc(nq * 2);
    float* o = static_cast<float*>(be.alloc(nq * 4)); float* lse = static_cast<float*>(be.alloc(ns * 4));
    float* drow = static_cast<float*>(be.alloc(ns * 4));
    float* dq = static_cast<float*>(be.alloc(nq * 4)); float* dk = static_cast<float*>(be.alloc(nk * 4));
    float* dv = static_cast<float*>(be.alloc(nk * 4));
    fill_random_bf16(be, q, nq, 1); fill_random_bf16(be, k, nk, 2); fill_random_bf16(be, v, nk, 3); fill_random_bf16(be, dout, nq, 4);
    AttnBlock blk{s.lq, s.lkv, 0, nullptr};
    auto fwd = [&] { be.attn_fwd(d, blk, AttnFwdIO{q, k, v, o, lse}); };
    auto fwdbwd = [&] {
      fwd();
      be.cast_from_f32(DType::BF16, o, o16, nq);
      be.row_dot(d, s.lq, dout, o16, drow);
      be.zero(dq, nq * 4); be.zero(dk, nk * 4); be.zero(dv, nk * 4);
      be.attn_bwd(d, blk, AttnBwdIO{q, k, v, dout, lse, drow, dq, dk, dv});
    };
    const double flops = 4.0 * s.B * s.H * s.lq * s.lkv * s.D;
    // sm90 kernels (default on Hopper: the backward's dQ one tile late, then in the same tile), then the
    // portable ones.
    for (int variant = hopper ? 0 : 2; variant < 3; ++variant) {
      if (!path_on[variant]) continue;
      be.set_sm90(variant < 2);
      cuda::sm90_set_bwd_lag(variant == 1 ? 0 : -1);
      const char* path = kPaths[variant];
      const double t_fwd = median_ms(be, iters, fwd), t_all = median_ms(be, iters, fwdbwd);
      const double t_bwd = median_ms(be, iters, [&] {
        be.attn_bwd(d, blk, AttnBwdIO{q, k, v, dout, lse, drow, dq, dk, dv});
      });
      // A schedule's first block writes dK/dV instead of adding to them (no read).
      const double t_bwd_write = median_ms(be, iters, [&] {
        be.attn_bwd(d, blk, AttnBwdIO{q, k, v, dout, lse, drow, dq, dk, dv, /*accumulate_dkv=*/false});
      });
      std::printf("{\"device\":\"%s\",\"shape\":\"H%lld/Hkv%lld d%lld Lq%lld Lkv%lld\",\"path\":\"%s\","
                  "\"ours_fwd_ms\":%.3f,\"ours_fwd_tflops\":%.1f,\"ours_fwdbwd_ms\":%.3f,\"ours_fwdbwd_tflops\":%.1f,"
                  "\"ours_bwd_kernels_ms\":%.3f,\"ours_bwd_write_ms\":%.3f}\n",
                  be.device_name().c_str(), (long long)s.H, (long long)s.Hkv, (long long)s.D, (long long)s.lq,
                  (long long)s.lkv, path, t_fwd, flops / t_fwd / 1e9, t_all, 3.5 * flops / t_all / 1e9, t_bwd, t_bwd_write);
      std::fflush(stdout);
    }
    for (void* p : {q, k, v, dout, o16, static_cast<void*>(o), static_cast<void*>(lse), static_cast<void*>(drow),
                    static_cast<void*>(dq), static_cast<void*>(dk), static_cast<void*>(dv)})
      be.free(p);
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // no GPU, out of memory, a failed launch: say so, no abort
    std::fprintf(stderr, "xattn_cuda_bench: %s\n", e.what());
    return 1;
  }
}
