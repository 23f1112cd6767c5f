// What a schedule needs from a device: memory, kernels and an ordered compute stream.
// The CPU backend runs everything synchronously; the CUDA backend enqueues on its compute stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/attn.h"
#include "core/partial_wire.h"

namespace xattn {

// A traced call: its marks in ms after its first, and the stream's ms from the previous filed call's last
// mark to its first (-1 for the first call): time the stream spent outside traced calls.
struct TracedCall {
  std::string call;
  double gap_ms = -1;
  std::vector<std::pair<std::string, double>> marks;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  virtual void* alloc(size_t bytes) = 0;     // device memory, never null (throws)
  virtual void free(void* p) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device, in stream order
  // `rows` rows of `width` bytes, each `src_pitch` apart in src and `dst_pitch` apart in dst (gathers and
  // scatters of row ranges across the batch and head dimensions).
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void fill_f32(float* p, size_t n, float value) = 0;
  virtual void add_f32(float* dst, const float* src, size_t n) = 0;  // dst += src
  // Copies between host and device memory; block until done.
  virtual void to_host(void* host, const void* dev, size_t bytes) = 0;
  virtual void from_host(void* dev, const void* host, size_t bytes) = 0;
  virtual void synchronize() = 0;  // waits for all enqueued compute
  // Device memory in use on this backend's device (all processes), or 0 where not meaningful (CPU).
  virtual uint64_t memory_used() { return 0; }
  virtual uint64_t memory_total() { return 0; }  // the device's memory (0 on CPU)
  // Most bytes held in tensors at once since the last reset (0 where the backend does not track it).
  virtual uint64_t memory_peak(bool /*reset*/) { return 0; }
  // A hint from a schedule: transfers run alongside the kernels that follow, each holding about `sms` SMs
  // (Transport::transfer_sms; 0: none, until set again), so a GPU backend sizes its grids to absorb them.
  // No effect on CPU.
  virtual void set_transfer_sms(int /*sms*/) {}
  // True where calls only enqueue work (CUDA): host work after a launch, such as posting a transfer,
  // then overlaps the kernel. False where every call runs to completion first (CPU).
  virtual bool enqueues() const { return false; }
  // Roughly what the attention kernels sustain, in FLOP/s. Schedules weigh a block's compute against its
  // transfer time with it to choose how finely to pipeline; only its order of magnitude matters.
  virtual double attention_flops_per_second() const = 0;
  // Visual rows the backward kernel covers with one CTA on every SM it can have (fewer beside transfers
  // that take SMs: set_transfer_sms); 0 where waves do not matter, as on CPU. LV-XAttn splits a block's
  // backward on whole waves.
  virtual double bwd_kv_rows_per_wave(const AttnDims& /*d*/) const { return 0; }
  // Timeline marks, for diagnosing schedules ($XATTN_TRACE): a mark's time is when the compute stream
  // reaches it. trace_close(call) files the marks since the last close under `call` (an empty name drops
  // them); trace_ready() returns, without waiting, the filed calls whose marks the stream has passed,
  // oldest first. Nothing here waits for the device, so tracing leaves queued work queued.
  virtual void trace_mark(std::string label) = 0;
  virtual void trace_close(std::string call) = 0;
  virtual std::vector<TracedCall> trace_ready() = 0;
  // A stopwatch on the compute stream, for benchmarks: stopwatch_ms() waits for the stream and returns the
  // ms between the last two stopwatch_mark() calls, as the stream reached them (host gaps before the first
  // op after a mark count, the host's wait for the result does not).
  virtual void stopwatch_mark() = 0;
  virtual double stopwatch_ms() = 0;
  // Timed spans on the compute stream: the device time from span_begin() to span_end() (transfer waits on
  // the stream included), for calls a caller wants timed without waiting for each. spans_ms() waits for the
  // last span to end and returns the sum since the previous reading.
  virtual void span_begin() = 0;
  virtual void span_end() = 0;
  virtual double spans_ms() = 0;

  // Kernels (see attn.h for layouts).
  virtual void attn_fwd(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io) = 0;
  virtual void attn_bwd(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io) = 0;
  // acc = merge(acc, part), max-shifted; -inf on both sides keeps O = 0, LSE = -inf.
  virtual void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
                         const float* part_lse) = 0;
  // A float32 partial (O or dQ) [B, lq, H, D] to its float16 wire form and back (partial_wire.h): wire [B, lq, H, D]
  // float16, scale [B, H, lq] (the LSE's layout).
  virtual void partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale) = 0;
  virtual void partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale,
                                 float* o) = 0;
  // The forward's last merge, for rows [r0, r0 + n) of a block of lq rows: merge(acc, part) as lse_merge, with
  // acc (O, LSE) read in its natural layout and left as it is, written straight to the final O (storage dtype)
  // and LSE, both natural. One pass instead of unpacking, merging and casting the whole block after its last
  // chunk is home.
  virtual void merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o, const float* acc_lse,
                           const HomePartial& part, void* out_o, float* out_lse) = 0;
  // drow[b,h,i] = sum_d dO[b,i,h,d] * O[b,i,h,d]   (O as stored: dtype)
  virtual void row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow) = 0;
  // Casts between float32 and the storage dtype (n elements).
  virtual void cast_from_f32(DType to, const float* src, void* dst, size_t n) = 0;
  virtual void cast_to_f32(DType from, const void* src, float* dst, size_t n) = 0;
};

}  // namespace xattn
