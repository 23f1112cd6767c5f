// Host side of the TMA loads: tensor maps (cuTensorMapEncodeTiled, reached through the runtime's driver
// entry point, so nothing links against libcuda) over the attention layouts, 128-byte swizzled boxes of
// 128 bytes of head dim (64 elements of a 16-bit type, 32 of fp32) x `rows` rows.
#pragma once
#include <cuda.h>

#include <cstdint>

#include "core/dtype.h"
#include "cuda/kernels.h"

namespace xattn::cuda {

// Packed query rows of a [B, lq, H, D] tensor (Q or dO): the rows of KV head hk are the query positions
// times the group's heads, so the map is 5-D (D, group, Hkv, lq, B) and one box covers `rows` packed rows
// (rows % group == 0). Rows past lq read as zeros.
CUtensorMap packed_rows_map(const void* base, DType t, const AttnGeom& g, int rows);
// The same packed rows of an fp32 [B, lq, H, D] tensor (dQ), boxes of 32 head-dim elements (128 bytes) x
// `rows` packed rows, for TMA reductions.
CUtensorMap packed_rows_map_f32(float* base, const AttnGeom& g, int rows);
// Rows of one KV head in a [B, lkv, Hkv, D] tensor (K or V): 4-D (D, Hkv, lkv, B); rows past lkv read as zeros.
CUtensorMap kv_rows_map(const void* base, DType t, const AttnGeom& g, int rows);

}  // namespace xattn::cuda
