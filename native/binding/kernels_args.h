// Argument readers for the kernels test surface: dims, block options and host tensors, each checked
// against the shapes it must have (errors name the tensor, the expected and the actual length).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/attn.h"

namespace xattn::binding {

// A tensor's name and its extents, e.g. {"q", {{"batch", 1}, {"lq", 4}, {"heads", 4}, {"headDim", 8}}}
// (an extent with an empty name prints as its number only).
struct TensorShape {
  const char* name;
  std::vector<std::pair<const char*, int64_t>> extents;
  int64_t elements() const;     // throws SHAPE_MISMATCH if the product overflows
  std::string describe() const;  // "128 = batch 1 × lq 4 × heads 4 × headDim 8"
};

AttnDims read_dims(const Napi::Value& v);
DType read_dtype(const Napi::Value& v);
int64_t read_count(const Napi::Value& v, const char* name);  // an integer >= 0

// {lq, lkv, kvOffset?, mask?}; the mask (if any) is checked against batch and lq.
AttnBlock read_block(const Napi::Value& v, const AttnDims& d);

// The data of a typed array holding `dtype` elements (Float32Array for float32, Uint16Array raw bits for
// bfloat16/float16) with exactly shape.elements() elements.
void* tensor_data(const Napi::Value& v, DType dtype, const TensorShape& shape);
// A Float32Array of exactly shape.elements() elements (LSE, drow, O partials: float32 whatever the dtype).
float* f32_data(const Napi::Value& v, const TensorShape& shape);
// The element-type check of tensor_data only; returns the element count.
size_t typed_length(const Napi::Value& v, DType dtype, const char* name);

}  // namespace xattn::binding
