// Launchers of the CUDA kernels (host side). Layouts as in core/attn.h; everything is enqueued on `stream`.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/attn.h"
#include "core/dtype.h"
#include "core/partial_wire.h"

namespace xattn::cuda {

// Geometry shared by the attention kernels. Query rows of one KV head are "packed": packed row r of
// KV head hk is query position r / group of query head hk * group + r % group (GQA without copies).
struct AttnGeom {
  int64_t batch = 1, lq = 0, lkv = 0, kv_offset = 0;
  int heads = 1, kv_heads = 1, group = 1, head_dim = 64;
  float scale = 1.f;               // softmax scale (natural)
  const int32_t* mask = nullptr;   // [B, lq, 2] global [begin, end) or null
  // The KV heads a launch covers: [kv_head_begin, kv_head_begin + launched_kv_heads()) of the kv_heads the
  // tensors hold (others untouched). Honoured by sm90_attn_bwd only, for now (head-by-head experiments).
  int kv_head_begin = 0, kv_head_count = 0;  // count 0: all
  int launched_kv_heads() const { return kv_head_count > 0 ? kv_head_count : kv_heads; }
};

// The kernels' geometry of one block (every KV head).
AttnGeom attn_geom(const AttnDims& d, const AttnBlock& b);

struct FwdArgs {
  const void* q; const void* k; const void* v;
  float* o; float* lse;
  int splits = 1;          // KV splits (> 1: partials go to o_part/lse_part, then a combine kernel)
  float* o_part = nullptr;   // [splits, B, lq, H, D]
  float* lse_part = nullptr; // [splits, B, H, lq]
  void* o_out = nullptr;     // sm90, splits == 1: O in the storage dtype, written instead of o
};

struct BwdArgs {
  const void* q; const void* k; const void* v; const void* dout;
  const float* lse; const float* drow;
  float* dq; float* dk; float* dv;
  bool dkv_overwrite = false;  // sm90: write dK/dV instead of adding to them
  int ctas = 0;                // sm90 persistent grids (d64): CTAs that walk the K/V tiles (0: one per tile)
  int dq_splits = 1;          // KV splits of the dQ kernel (> 1: partials in dq_part, then a reduce kernel)
  float* dq_part = nullptr;   // [dq_splits, B, lq, H, D]
};

// Tensor-core (mma.sync) kernels: bf16/fp16, head_dim 64 or 128, 16-byte aligned rows.
bool tc_supported(DType t, int head_dim);
int tc_fwd_tiles(int64_t lkv, int head_dim, int mtiles);  // KV tiles the forward walks (its split unit)
// mtiles: 16-row m-tiles per warp (1 or 2); a CTA covers 64 * mtiles packed rows.
int tc_fwd_row_tiles(const AttnGeom& g, int mtiles);
void tc_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, int mtiles, cudaStream_t s);
int tc_dq_tiles(int head_dim, int64_t lkv);
int tc_dq_row_tiles(const AttnGeom& g);
void tc_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s);

// Hopper kernels (sm_90a: wgmma, TMA, warp specialisation): bf16/fp16, head_dim 64 or 128, group dividing
// 64, 16-byte aligned rows. The backward adds dQ with fp32 atomics (each CTA owns a KV tile, so dK/dV are
// plain stores and no dQ recomputation is needed); the order of those adds is not fixed run to run.
bool sm90_available(int device);  // device is sm_90 and this binary carries sm_90a code for it
bool sm90_supported(DType t, const AttnGeom& g);
int sm90_fwd_splits(const AttnGeom& g, int sm_count, int cap, int min_waves);  // KV splits that fill the GPU (cap 0 = auto)
void sm90_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s);
void sm90_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s);
constexpr int kSm90BwdKvRows = 128;  // K/V rows per CTA of sm90_attn_bwd (its grid: K/V tiles x batch x kv heads)
// Backward schedule knob for checks and tuning (process-wide): 1 runs each tile's dQ product one tile late so
// the consumer warpgroups need not meet every tile; 0 runs it in the same tile; -1 restores the default, 1
// at both head dims (the faster on H200 once the dS^T stores ran under the dV/dK GEMMs).
void sm90_set_bwd_lag(int lag);

// Generic kernels: any dtype (float32 too), head_dim <= 256, any alignment; slower.
void generic_attn_fwd(DType t, const AttnGeom& g, const FwdArgs& a, cudaStream_t s);
void generic_attn_bwd(DType t, const AttnGeom& g, const BwdArgs& a, cudaStream_t s);

// Split-KV epilogues.
void combine_fwd_splits(const AttnGeom& g, int splits, const float* o_part, const float* lse_part, float* o,
                        float* lse, cudaStream_t s);
// dst[e] += sum over p < parts of src[p * n + e] (dQ split reduce; parts = 1 is add_f32).
void add_f32_parts(size_t n, int parts, const float* src, float* dst, cudaStream_t s);

// Element-wise ops of the Backend interface.
void lse_merge(int64_t batch, int64_t lq, int heads, int head_dim, float* acc_o, float* acc_lse,
               const float* part_o, const float* part_lse, cudaStream_t s);
void partial_to_wire(int64_t batch, int64_t lq, int heads, int head_dim, const float* o, uint16_t* wire,
                     float* scale, cudaStream_t s);
void partial_from_wire(int64_t batch, int64_t lq, int heads, int head_dim, const uint16_t* wire, const float* scale,
                       float* o, cudaStream_t s);
// Backend::merge_final: rows [r0, r0 + n) of acc (natural, lq rows) merged with the part (n rows), to out.
void merge_final(DType t, int64_t batch, int64_t lq, int64_t r0, int64_t n, int heads, int head_dim, const float* acc_o,
                 const float* acc_lse, const HomePartial& part, void* out_o, float* out_lse, cudaStream_t s);
void row_dot(DType t, int64_t batch, int64_t lq, int heads, int head_dim, const void* dout, const void* out,
             float* drow, cudaStream_t s);
void cast_from_f32(DType to, const float* src, void* dst, size_t n, cudaStream_t s);
void cast_to_f32(DType from, const void* src, float* dst, size_t n, cudaStream_t s);
void fill_f32(float* p, size_t n, float value, cudaStream_t s);

}  // namespace xattn::cuda
