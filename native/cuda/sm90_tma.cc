#include "cuda/sm90_tma.h"

#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"
#include "cuda/driver_entry.h"

namespace xattn::cuda {
namespace {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiled encoder() {
  static const EncodeTiled fn = driver_fn<EncodeTiled>("cuTensorMapEncodeTiled", 12000);
  require(fn != nullptr, ErrorCode::Cuda, "the CUDA driver does not provide cuTensorMapEncodeTiled");
  return fn;
}

CUtensorMap encode(const void* base, DType t, cuuint32_t rank, const cuuint64_t* dims, const cuuint64_t* strides,
                   const cuuint32_t* box) {
  require(t == DType::BF16 || t == DType::F16 || t == DType::F32, ErrorCode::Internal,
          "TMA maps are for bf16, fp16 or fp32 tensors");
  const CUtensorMapDataType type = t == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                   : t == DType::F16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                     : CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  const cuuint32_t ones[5] = {1, 1, 1, 1, 1};
  CUtensorMap map;
  const CUresult r = encoder()(&map, type, rank, const_cast<void*>(base), dims, strides, box, ones,
                               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  require(r == CUDA_SUCCESS, ErrorCode::Cuda, "cuTensorMapEncodeTiled failed with CUresult " + std::to_string(r));
  return map;
}

// (D, group, Hkv, lq, B) over a [B, lq, H, D] tensor of `e`-byte elements; boxes of 128 bytes of D.
CUtensorMap packed_map(const void* base, DType t, cuuint64_t e, const AttnGeom& g, int rows) {
  const cuuint64_t D = g.head_dim, G = g.group;
  const cuuint64_t dims[5] = {D, G, static_cast<cuuint64_t>(g.kv_heads), static_cast<cuuint64_t>(g.lq),
                              static_cast<cuuint64_t>(g.batch)};
  const cuuint64_t strides[4] = {D * e, G * D * e, g.heads * D * e, g.lq * g.heads * D * e};
  const cuuint32_t box[5] = {static_cast<cuuint32_t>(128 / e), static_cast<cuuint32_t>(G), 1,
                             static_cast<cuuint32_t>(rows / G), 1};
  return encode(base, t, 5, dims, strides, box);
}

}  // namespace

CUtensorMap packed_rows_map(const void* base, DType t, const AttnGeom& g, int rows) {
  return packed_map(base, t, 2, g, rows);
}

CUtensorMap packed_rows_map_f32(float* base, const AttnGeom& g, int rows) {
  return packed_map(base, DType::F32, 4, g, rows);
}

CUtensorMap kv_rows_map(const void* base, DType t, const AttnGeom& g, int rows) {
  const cuuint64_t D = g.head_dim, e = 2;
  const cuuint64_t dims[4] = {D, static_cast<cuuint64_t>(g.kv_heads), static_cast<cuuint64_t>(g.lkv),
                              static_cast<cuuint64_t>(g.batch)};
  const cuuint64_t strides[3] = {D * e, g.kv_heads * D * e, g.lkv * g.kv_heads * D * e};
  const cuuint32_t box[4] = {64, 1, static_cast<cuuint32_t>(rows), 1};
  return encode(base, t, 4, dims, strides, box);
}

}  // namespace xattn::cuda
