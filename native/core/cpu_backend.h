// The CPU backend: host memory is device memory and every call runs to completion before returning.
#pragma once
#include <chrono>

#include "core/backend.h"

namespace xattn {

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) override;
  void zero(void* p, size_t bytes) override;
  void fill_f32(float* p, size_t n, float value) override;
  void add_f32(float* dst, const float* src, size_t n) override;
  void to_host(void* host, const void* dev, size_t bytes) override;
  void from_host(void* dev, const void* host, size_t bytes) override;
  void synchronize() override {}
  double attention_flops_per_second() const override { return 5e10; }  // a multi-core AVX2 host, generously
  void trace_mark(std::string label) override;
  void trace_close(std::string call) override;
  std::vector<TracedCall> trace_ready() override;
  void stopwatch_mark() override;
  double stopwatch_ms() override;
  void span_begin() override { span_start_ = std::chrono::steady_clock::now(); }
  void span_end() override { spans_ += std::chrono::steady_clock::now() - span_start_; }
  double spans_ms() override;

  void attn_fwd(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io) override;
  void attn_bwd(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io) override;
  void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
                 const float* part_lse) override;
  void partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) override;
  void partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o) override;
  void merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o, const float* acc_lse,
                   const HomePartial& part, void* out_o, float* out_lse) override;
  void row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) override;
  void cast_from_f32(DType to, const float* src, void* dst, size_t n) override;
  void cast_to_f32(DType from, const void* src, float* dst, size_t n) override;

 private:
  std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> marks_;
  std::vector<TracedCall> traced_;
  std::chrono::steady_clock::time_point last_traced_{};  // the last filed call's last mark
  std::chrono::steady_clock::time_point watch_[2];
  int watch_marks_ = 0;
  std::chrono::steady_clock::time_point span_start_{};
  std::chrono::steady_clock::duration spans_{};
};

}  // namespace xattn
