#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/transport.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace xattn {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Enough KV splits that short-Lq problems still fill the GPU (about two waves of two CTAs per SM).
int choose_splits(int64_t ctas, int n_tiles, int sm_count, int cap) {
  const int64_t target = 4LL * sm_count;
  if (ctas <= 0 || ctas >= target || n_tiles < 8) return 1;
  int64_t s = (target + ctas - 1) / ctas;
  s = std::min<int64_t>(s, std::max(1, n_tiles / 4));
  s = std::min<int64_t>(s, cap > 0 ? cap : 64);
  const int64_t per = (n_tiles + s - 1) / s;
  return static_cast<int>((n_tiles + per - 1) / per);
}

void check_block(const AttnDims& d, const AttnBlock& b) {
  d.validate();
  require(b.lq >= 0, ErrorCode::InvalidArgument, "lq must be >= 0, got " + std::to_string(b.lq));
  require(b.lkv >= 0, ErrorCode::InvalidArgument, "lkv must be >= 0, got " + std::to_string(b.lkv));
  require(b.lkv < (int64_t{1} << 31) - 256, ErrorCode::InvalidArgument,
          "lkv must be below 2^31 per block, got " + std::to_string(b.lkv));
}

}  // namespace

cuda::AttnGeom cuda::attn_geom(const AttnDims& d, const AttnBlock& b) {
  cuda::AttnGeom g;
  g.batch = d.batch;
  g.lq = b.lq;
  g.lkv = b.lkv;
  g.kv_offset = b.kv_offset;
  g.heads = static_cast<int>(d.heads);
  g.kv_heads = static_cast<int>(d.kv_heads);
  g.group = static_cast<int>(d.group());
  g.head_dim = static_cast<int>(d.head_dim);
  g.scale = d.softmax_scale();
  g.mask = b.mask;
  return g;
}

CudaBackend::CudaBackend(int device) : device_(device) {
  // Streams share the device's hardware queues (8 by default); a copy-engine stream waiting on a peer's
  // counter stalls every stream in its queue. Ask for the most queues before the context exists, unless
  // the user chose a number.
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  int count = 0;
  XATTN_CUDA_CHECK(cudaGetDeviceCount(&count));
  require(device >= 0 && device < count, ErrorCode::InvalidArgument,
          "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " visible)");
  activate();
  cudaDeviceProp prop{};
  XATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  require(prop.major >= 8, ErrorCode::Cuda,
          std::string("xattn needs compute capability 8.0 or newer; ") + prop.name + " has " +
              std::to_string(prop.major) + "." + std::to_string(prop.minor));
  sm_count_ = prop.multiProcessorCount;
  sm90_ok_ = sm90_ = cuda::sm90_available(device);
  if (const char* w = std::getenv("XATTN_FWD_MIN_WAVES")) set_fwd_min_waves(std::atoi(w));
  device_name_ = prop.name;
  XATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&sync_event_, cudaEventDisableTiming));
  // Tensors come and go every step: the device's stream-ordered pool keeps freed memory for reuse
  // (no cudaFree, no device sync per tensor) and tracks the high-water mark for memory_peak().
  XATTN_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
  uint64_t keep_all = UINT64_MAX;
  XATTN_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_all));
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (workspace_) cudaFreeAsync(workspace_, stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  staging_.reset();
  if (pool_) cudaMemPoolTrimTo(pool_, 0);
  for (auto& m : marks_) cudaEventDestroy(m.second);
  for (auto& [call, marks] : filed_)
    for (auto& m : marks) cudaEventDestroy(m.second);
  if (traced_last_) cudaEventDestroy(traced_last_);
  for (cudaEvent_t e : watch_)
    if (e) cudaEventDestroy(e);
  for (auto& [begin, end] : spans_) cudaEventDestroy(begin), cudaEventDestroy(end);
  if (sync_event_) cudaEventDestroy(sync_event_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::activate() const { XATTN_CUDA_CHECK(cudaSetDevice(device_)); }

void* CudaBackend::alloc(size_t bytes) {
  activate();
  void* p = nullptr;
  // Stream-ordered on the compute stream: every transfer on the comm stream starts after an event
  // on the compute stream and is joined back before the schedule returns, so this order covers it.
  cudaError_t e = cudaMallocAsync(&p, bytes > 0 ? bytes : 1, stream_);
  if (e == cudaErrorMemoryAllocation) {
    // Freed blocks may still wait on queued work: drain, hand cached memory back, and try once more.
    cudaGetLastError();
    synchronize();
    XATTN_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0));
    e = cudaMallocAsync(&p, bytes > 0 ? bytes : 1, stream_);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(ErrorCode::Cuda, "cudaMalloc of " + std::to_string(bytes) + " bytes failed on " + device_name_ + ": " +
                              cudaGetErrorString(e) + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                              std::to_string(total_b >> 20) + ")");
  }
  return p;
}

void CudaBackend::free(void* p) {
  if (!p) return;
  activate();
  XATTN_CUDA_CHECK(cudaFreeAsync(p, stream_));  // reusable once the queued work that reads it is done
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  activate();
  XATTN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                          size_t rows) {
  if (width == 0 || rows == 0) return;
  if (rows == 1 || (dst_pitch == width && src_pitch == width)) return copy(dst, src, width * rows);
  activate();
  XATTN_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  activate();
  XATTN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
}

void CudaBackend::fill_f32(float* p, size_t n, float value) {
  activate();
  cuda::fill_f32(p, n, value, stream_);
}

void CudaBackend::add_f32(float* dst, const float* src, size_t n) {
  activate();
  cuda::add_f32_parts(n, 1, src, dst, stream_);
}

void CudaBackend::to_host(void* host, const void* dev, size_t bytes) {
  if (bytes == 0) return;
  synchronize();  // pageable copies block the host until prior work ends: make that a polled wait
  if (bytes >= cuda::HostStaging::kMinBytes) {
    if (!staging_) staging_ = std::make_unique<cuda::HostStaging>();
    return staging_->to_host(host, dev, bytes, stream_, [this](cudaEvent_t ev) { wait_event(ev); });
  }
  XATTN_CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

void CudaBackend::from_host(void* dev, const void* host, size_t bytes) {
  if (bytes == 0) return;
  synchronize();
  XATTN_CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream_));
  synchronize();
}

float* CudaBackend::workspace(size_t floats) {
  const size_t bytes = floats * sizeof(float);
  if (bytes > workspace_bytes_) {
    if (workspace_) {
      free(workspace_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
    }
    workspace_ = alloc(bytes + bytes / 4);  // headroom so slowly growing shapes do not reallocate each call
    workspace_bytes_ = bytes + bytes / 4;
  }
  return static_cast<float*>(workspace_);
}

void CudaBackend::attn_fwd(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io) {
  check_block(d, b);
  activate();
  if (b.lq == 0) return;
  const size_t o_n = static_cast<size_t>(d.batch * b.lq * d.heads * d.head_dim);
  const size_t lse_n = static_cast<size_t>(d.batch * d.heads * b.lq);
  if (b.lkv == 0) {  // nothing visible: O = 0, LSE = -inf
    if (io.o_out) zero(io.o_out, o_n * dtype_size(d.dtype));
    else zero(io.o, o_n * sizeof(float));
    cuda::fill_f32(io.lse, lse_n, -INFINITY, stream_);
    return;
  }
  const cuda::AttnGeom g = cuda::attn_geom(d, b);
  cuda::FwdArgs a{io.q, io.k, io.v, io.o, io.lse};
  const bool fast = cuda::tc_supported(d.dtype, g.head_dim) && aligned16(io.q) && aligned16(io.k) &&
                    aligned16(io.v) && aligned16(io.o);
  // A final O in the storage dtype: the sm90 kernel writes it when there is no KV split; elsewhere float32
  // O is cast.
  const auto cast_out = [&] {
    if (io.o_out) cuda::cast_from_f32(d.dtype, io.o, io.o_out, o_n, stream_);
  };
  if (!fast) {
    cuda::generic_attn_fwd(d.dtype, g, a, stream_);
    return cast_out();
  }
  const bool hopper = sm90_ && cuda::sm90_supported(d.dtype, g);
  const int64_t ctas = static_cast<int64_t>(cuda::tc_fwd_row_tiles(g, fwd_mtiles_)) * d.batch * d.kv_heads;
  const bool many_held = transfer_sms_ >= Transport::kManyTransferSms;
  const int free_sms = many_held ? sm_count_ : std::max(1, sm_count_ - transfer_sms_);
  a.splits = hopper ? cuda::sm90_fwd_splits(g, free_sms, max_splits_, many_held ? fwd_min_waves_ : 1)
                    : choose_splits(ctas, cuda::tc_fwd_tiles(b.lkv, g.head_dim, fwd_mtiles_), sm_count_, max_splits_);
  if (a.splits > 1) {
    float* ws = workspace(a.splits * (o_n + lse_n));
    a.o_part = ws;
    a.lse_part = ws + a.splits * o_n;
  }
  if (hopper && a.splits == 1 && aligned16(io.o_out)) a.o_out = io.o_out;
  if (hopper)
    cuda::sm90_attn_fwd(d.dtype, g, a, stream_);
  else
    cuda::tc_attn_fwd(d.dtype, g, a, fwd_mtiles_, stream_);
  if (a.splits > 1) cuda::combine_fwd_splits(g, a.splits, a.o_part, a.lse_part, io.o, io.lse, stream_);
  if (!a.o_out) cast_out();
}

void CudaBackend::attn_bwd(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io) {
  check_block(d, b);
  activate();
  const cuda::AttnGeom g = cuda::attn_geom(d, b);
  const bool fast = cuda::tc_supported(d.dtype, g.head_dim) && aligned16(io.q) && aligned16(io.k) &&
                    aligned16(io.v) && aligned16(io.dout) && aligned16(io.dq) && aligned16(io.dk) &&
                    aligned16(io.dv);
  const bool sm90 = fast && sm90_ && cuda::sm90_supported(d.dtype, g) && b.lq > 0 && b.lkv > 0;
  if (!io.accumulate_dkv && !sm90) {  // only the sm90 kernel writes dK/dV itself: the others add to zeros
    const size_t n = static_cast<size_t>(d.batch * b.lkv * d.kv_heads * d.head_dim) * sizeof(float);
    zero(io.dk, n);
    zero(io.dv, n);
  }
  if (b.lq == 0 || b.lkv == 0) return;
  cuda::BwdArgs a{io.q, io.k, io.v, io.dout, io.lse, io.drow, io.dq, io.dk, io.dv};
  a.dkv_overwrite = sm90 && !io.accumulate_dkv;
  if (!fast) return cuda::generic_attn_bwd(d.dtype, g, a, stream_);
  if (sm90) {
    // A persistent grid (d64) keeps to the SMs transfers leave free; beside transfers that hold many SMs
    // (NCCL's P2P kernels) a CTA that cannot start would hold back all its tiles, so there each K/V tile
    // gets its own CTA.
    if (transfer_sms_ < Transport::kManyTransferSms) a.ctas = std::max(1, sm_count_ - transfer_sms_);
    return cuda::sm90_attn_bwd(d.dtype, g, a, stream_);
  }
  const size_t dq_n = static_cast<size_t>(d.batch * b.lq * d.heads * d.head_dim);
  const int64_t ctas = static_cast<int64_t>(cuda::tc_dq_row_tiles(g)) * d.batch * d.kv_heads;
  a.dq_splits = choose_splits(ctas, cuda::tc_dq_tiles(g.head_dim, b.lkv), sm_count_, max_splits_);
  if (a.dq_splits > 1) a.dq_part = workspace(a.dq_splits * dq_n);
  cuda::tc_attn_bwd(d.dtype, g, a, stream_);
  if (a.dq_splits > 1) cuda::add_f32_parts(dq_n, a.dq_splits, a.dq_part, io.dq, stream_);
}

// The Hopper backward runs one CTA per SM over a grid of K/V tiles x batch x kv heads; other kernels
// leave waves to the plan's defaults. Beside transfers that run as kernels (NCCL's, one CTA per channel)
// a wave is a few SMs short: a piece sized for exactly four full waves then takes five (2x H200 over host
// memory: +0.35 ms at 4096x32K).
double CudaBackend::bwd_kv_rows_per_wave(const AttnDims& d) const {
  constexpr int kTransferSms = 4;
  if (!sm90_ || !cuda::tc_supported(d.dtype, d.head_dim) || d.batch * d.kv_heads <= 0) return 0;
  const int sms = sm_count_ - (transfer_sms_ > 0 ? kTransferSms : 0);
  return static_cast<double>(sms) * cuda::kSm90BwdKvRows / static_cast<double>(d.batch * d.kv_heads);
}

void CudaBackend::lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
                            const float* part_lse) {
  d.validate();
  activate();
  cuda::lse_merge(d.batch, lq, static_cast<int>(d.heads), static_cast<int>(d.head_dim), acc_o, acc_lse, part_o,
                  part_lse, stream_);
}

void CudaBackend::partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) {
  d.validate();
  activate();
  cuda::partial_to_wire(d.batch, lq, static_cast<int>(d.heads), static_cast<int>(d.head_dim), o, wire, scale, stream_);
}

void CudaBackend::partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o) {
  d.validate();
  activate();
  cuda::partial_from_wire(d.batch, lq, static_cast<int>(d.heads), static_cast<int>(d.head_dim), wire, scale, o,
                          stream_);
}

void CudaBackend::merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o,
                              const float* acc_lse, const HomePartial& part, void* out_o, float* out_lse) {
  d.validate();
  activate();
  cuda::merge_final(d.dtype, d.batch, lq, r0, n, static_cast<int>(d.heads), static_cast<int>(d.head_dim), acc_o, acc_lse,
                    part, out_o, out_lse, stream_);
}

void CudaBackend::row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) {
  d.validate();
  activate();
  cuda::row_dot(d.dtype, d.batch, lq, static_cast<int>(d.heads), static_cast<int>(d.head_dim), dout, out, drow,
                stream_);
}

void CudaBackend::cast_from_f32(DType to, const float* src, void* dst, size_t n) {
  activate();
  cuda::cast_from_f32(to, src, dst, n, stream_);
}

void CudaBackend::cast_to_f32(DType from, const void* src, float* dst, size_t n) {
  activate();
  cuda::cast_to_f32(from, src, dst, n, stream_);
}

}  // namespace xattn
