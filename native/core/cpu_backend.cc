#include "core/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "core/cpu_attention.h"
#include "core/error.h"

namespace xattn {

namespace {
// Cache-line alignment keeps SIMD loads of tensor rows aligned when the head dim allows it.
constexpr std::align_val_t kAlign{64};
}  // namespace

void* CpuBackend::alloc(size_t bytes) {
  try {
    return ::operator new(bytes == 0 ? 1 : bytes, kAlign);
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::Internal, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  }
}

void CpuBackend::free(void* p) {
  if (p) ::operator delete(p, kAlign);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}
void CpuBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) {
  for (size_t i = 0; i < rows && width; ++i)
    std::memmove(static_cast<char*>(dst) + i * dst_pitch, static_cast<const char*>(src) + i * src_pitch, width);
}
void CpuBackend::zero(void* p, size_t bytes) {
  if (bytes) std::memset(p, 0, bytes);
}
void CpuBackend::fill_f32(float* p, size_t n, float value) { std::fill(p, p + n, value); }
void CpuBackend::add_f32(float* dst, const float* src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}
void CpuBackend::to_host(void* host, const void* dev, size_t bytes) { copy(host, dev, bytes); }
void CpuBackend::from_host(void* dev, const void* host, size_t bytes) { copy(dev, host, bytes); }

void CpuBackend::attn_fwd(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io) {
  d.validate();
  cpu::attn_forward(d, b, io);
  if (io.o_out) cast_from_f32(d.dtype, io.o, io.o_out, static_cast<size_t>(d.batch * b.lq * d.heads * d.head_dim));
}

void CpuBackend::attn_bwd(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io) {
  d.validate();
  if (!io.accumulate_dkv) {
    const size_t n = static_cast<size_t>(d.batch * b.lkv * d.kv_heads * d.head_dim) * sizeof(float);
    zero(io.dk, n);
    zero(io.dv, n);
  }
  cpu::attn_backward(d, b, io);
}

void CpuBackend::lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
                           const float* part_lse) {
  cpu::lse_merge(d, lq, acc_o, acc_lse, part_o, part_lse);
}

void CpuBackend::partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) {
  cpu::partial_to_wire(d, lq, o, wire, scale);
}

void CpuBackend::partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o) {
  cpu::partial_from_wire(d, lq, wire, scale, o);
}

void CpuBackend::merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o,
                             const float* acc_lse, const HomePartial& part, void* out_o, float* out_lse) {
  cpu::merge_final(d, lq, r0, n, acc_o, acc_lse, part, out_o, out_lse);
}

void CpuBackend::row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) {
  cpu::row_dot(d, lq, dout, out, drow);
}

void CpuBackend::cast_from_f32(DType to, const float* src, void* dst, size_t n) { cpu::cast_from_f32(to, src, dst, n); }
void CpuBackend::cast_to_f32(DType from, const void* src, float* dst, size_t n) { cpu::cast_to_f32(from, src, dst, n); }

// Every call has finished when it returns, so the host clock is the stream's.
void CpuBackend::trace_mark(std::string label) { marks_.emplace_back(std::move(label), std::chrono::steady_clock::now()); }

void CpuBackend::trace_close(std::string call) {
  const auto ms = [](auto from, auto to) { return std::chrono::duration<double, std::milli>(to - from).count(); };
  if (!call.empty() && !marks_.empty()) {
    TracedCall c{std::move(call), last_traced_ == decltype(last_traced_){} ? -1 : ms(last_traced_, marks_.front().second), {}};
    for (auto& [label, t] : marks_) c.marks.emplace_back(std::move(label), ms(marks_.front().second, t));
    last_traced_ = marks_.back().second;
    traced_.push_back(std::move(c));
  }
  marks_.clear();
}

std::vector<TracedCall> CpuBackend::trace_ready() { return std::exchange(traced_, {}); }

void CpuBackend::stopwatch_mark() {
  watch_[0] = watch_[1];
  watch_[1] = std::chrono::steady_clock::now();
  ++watch_marks_;
}

double CpuBackend::spans_ms() {
  const double ms = std::chrono::duration<double, std::milli>(spans_).count();
  spans_ = {};
  return ms;
}

double CpuBackend::stopwatch_ms() {
  require(watch_marks_ >= 2, ErrorCode::InvalidArgument, "the stopwatch needs two marks before a reading");
  return std::chrono::duration<double, std::milli>(watch_[1] - watch_[0]).count();
}

}  // namespace xattn
