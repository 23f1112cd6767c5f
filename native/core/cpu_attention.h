// Exact cross-attention kernels on the CPU (fp32 accumulation, any storage dtype, GQA, range masks).
// Layouts and semantics are those of attn.h / backend.h. Every kernel is deterministic: each output
// element is produced by one task of ThreadPool::shared() in a fixed order, whatever the thread count.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/attn.h"
#include "core/partial_wire.h"

namespace xattn::cpu {

// Partial forward over one KV block: O normalised over the block, LSE = natural log-sum-exp.
// Rows that see no key of the block get O = 0, LSE = -inf.
void attn_forward(const AttnDims& d, const AttnBlock& b, const AttnFwdIO& io);

// Backward over one KV block given the final (global) LSE and drow = rowsum(dO * O); accumulates (+=)
// into dq, dk, dv. Masked entries and rows with LSE = -inf contribute nothing.
void attn_backward(const AttnDims& d, const AttnBlock& b, const AttnBwdIO& io);

// acc = merge(acc, part) by log-sum-exp, max-shifted; -inf on both sides keeps O = 0, LSE = -inf.
void lse_merge(const AttnDims& d, int64_t lq, float* acc_o, float* acc_lse, const float* part_o,
               const float* part_lse);

// Backend::merge_final: lse_merge's rule, the result written to out_o (storage dtype) and out_lse.
void merge_final(const AttnDims& d, int64_t lq, int64_t r0, int64_t n, const float* acc_o, const float* acc_lse,
                 const HomePartial& part, void* out_o, float* out_lse);

// Backend::partial_to_wire / partial_from_wire (partial_wire.h).
void partial_to_wire(const AttnDims& d, int64_t lq, const float* o, uint16_t* wire, float* scale);
void partial_from_wire(const AttnDims& d, int64_t lq, const uint16_t* wire, const float* scale, float* o);

// drow[b,h,i] = sum_d dO[b,i,h,d] * O[b,i,h,d], both in the storage dtype.
void row_dot(const AttnDims& d, int64_t lq, const void* dout, const void* out, float* drow);

void cast_from_f32(DType to, const float* src, void* dst, size_t n);
void cast_to_f32(DType from, const void* src, float* dst, size_t n);

}  // namespace xattn::cpu
