// The cross-attention problem as every backend and schedule sees it.
//
// Layouts (row-major, batch outermost; "BSHD"):
//   Q, O, dQ, dO   [B, Lq,  H,   D]      LSE, Drow [B, H, Lq] (float32, natural log)
//   K, V, dK, dV   [B, Lkv, Hkv, D]      mask      [B, Lq, 2]  (int32 global [begin, end) of visible KV)
// Query head h reads KV head h / (H / Hkv) (GQA, never copied). Q/K/V/dO use the storage dtype;
// O partials, LSE, D and every gradient accumulator are float32.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace xattn {

struct AttnDims {
  int64_t batch = 1;
  int64_t heads = 1;     // H (query heads)
  int64_t kv_heads = 1;  // Hkv, divides H
  int64_t head_dim = 64; // D
  float scale = 0.f;     // softmax scale; 0 means 1/sqrt(D)
  DType dtype = DType::F32;

  float softmax_scale() const;
  int64_t group() const { return heads / kv_heads; }
  void validate() const;  // throws XattnError with a message naming the bad field
};

// One local block of the problem: lq query rows against lkv key rows that start at global kv_offset.
struct AttnBlock {
  int64_t lq = 0;
  int64_t lkv = 0;
  int64_t kv_offset = 0;     // global index of K/V row 0 (for the mask)
  const int32_t* mask = nullptr;  // [B, lq, 2] or null (everything visible)
};

// Forward partial: O (float32, normalised over this block) and LSE. Rows that see no key in this block
// give O = 0 and LSE = -inf.
struct AttnFwdIO {
  const void* q; const void* k; const void* v;
  float* o;   // [B, lq, H, D]
  float* lse; // [B, H, lq]
  // Where set, O also goes here in the call's dtype, rounded once (a one-block forward's final output), and
  // o's content is unspecified afterwards: a backend may write this alone and save a pass over float32 O.
  void* o_out = nullptr;
};

// Backward on one block, accumulating (+=) into float32 dq/dk/dv.
// drow = rowsum(dO * O) of the final output, lse = the final (global) LSE.
struct AttnBwdIO {
  const void* q; const void* k; const void* v; const void* dout;
  const float* lse; const float* drow;
  float* dq; float* dk; float* dv;
  // false: dK/dV are written, not added to (a schedule's first block: saves a memset and a read of
  // both float32 tensors). dQ is always added to.
  bool accumulate_dkv = true;
};

}  // namespace xattn
