#include "binding/kernels_args.h"

#include <limits>

#include "binding/common.h"
#include "core/error.h"

namespace xattn::binding {

namespace {

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}

std::string js_type_name(const Napi::Value& v) {
  if (v.IsTypedArray()) return typed_array_name(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsArray()) return "Array";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  return "object";
}

Napi::TypedArray typed_array(const Napi::Value& v, napi_typedarray_type want, const char* name,
                             const std::string& why) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    fail(ErrorCode::InvalidArgument, std::string(name) + (want == napi_int32_array ? " must be an " : " must be a ") +
                                         typed_array_name(want) + why + ", got " + js_type_name(v));
  return v.As<Napi::TypedArray>();
}

napi_typedarray_type storage_array_type(DType t) {
  return t == DType::F32 ? napi_float32_array : napi_uint16_array;
}

void* array_data(const Napi::TypedArray& arr) {
  return static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
}

void* checked_data(const Napi::TypedArray& arr, const TensorShape& shape) {
  if (static_cast<int64_t>(arr.ElementLength()) != shape.elements())
    fail(ErrorCode::ShapeMismatch, std::string(shape.name) + " has " + std::to_string(arr.ElementLength()) +
                                       " elements, expected " + shape.describe());
  return array_data(arr);
}

}  // namespace

int64_t TensorShape::elements() const {
  int64_t n = 1;
  for (const auto& e : extents)
    if (__builtin_mul_overflow(n, e.second, &n))
      fail(ErrorCode::ShapeMismatch, std::string(name) + " would have more elements than fit in 64 bits");
  return n;
}

std::string TensorShape::describe() const {
  std::string s = std::to_string(elements()) + " =";
  bool first = true;
  for (const auto& e : extents) {
    s += first ? " " : " × ";
    s += (*e.first ? std::string(e.first) + " " : std::string()) + std::to_string(e.second);
    first = false;
  }
  return s;
}

DType read_dtype(const Napi::Value& v) {
  if (!v.IsString()) fail(ErrorCode::InvalidArgument, "dtype must be a string (float32, bfloat16 or float16)");
  return parse_dtype(v.As<Napi::String>().Utf8Value());
}

AttnDims read_dims(const Napi::Value& v) {
  if (!v.IsObject())
    fail(ErrorCode::InvalidArgument, "dims must be an object {batch, heads, kvHeads, headDim, scale?, dtype}");
  const Napi::Object o = v.As<Napi::Object>();
  AttnDims d;
  d.batch = require_int(o, "batch");
  d.heads = require_int(o, "heads");
  d.kv_heads = require_int(o, "kvHeads");
  d.head_dim = require_int(o, "headDim");
  d.scale = static_cast<float>(get_number(o, "scale", 0.0));
  if (o.Has("dtype") && !o.Get("dtype").IsUndefined()) d.dtype = read_dtype(o.Get("dtype"));
  d.validate();
  return d;
}

int64_t read_count(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) fail(ErrorCode::InvalidArgument, std::string(name) + " must be a number, got " + js_type_name(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= 0 && x <= static_cast<double>(std::numeric_limits<int32_t>::max()) && x == static_cast<int64_t>(x)))
    fail(ErrorCode::InvalidArgument, std::string(name) + " must be an integer in 0..2^31-1, got " + std::to_string(x));
  return static_cast<int64_t>(x);
}

AttnBlock read_block(const Napi::Value& v, const AttnDims& d) {
  if (!v.IsObject()) fail(ErrorCode::InvalidArgument, "opts must be an object {lq, lkv, kvOffset?, mask?}");
  const Napi::Object o = v.As<Napi::Object>();
  AttnBlock b;
  b.lq = read_count(o.Get("lq"), "lq");
  b.lkv = read_count(o.Get("lkv"), "lkv");
  const Napi::Value off = o.Get("kvOffset");
  b.kv_offset = off.IsUndefined() ? 0 : read_count(off, "kvOffset");
  const Napi::Value mv = o.Get("mask");
  if (mv.IsUndefined() || mv.IsNull()) return b;
  const TensorShape shape{"mask", {{"batch", d.batch}, {"lq", b.lq}, {"", 2}}};
  const auto* m = static_cast<const int32_t*>(
      checked_data(typed_array(mv, napi_int32_array, "mask", " of [begin, end) pairs"), shape));
  for (int64_t r = 0; r < d.batch * b.lq; ++r) {
    const int32_t begin = m[2 * r], end = m[2 * r + 1];
    if (begin < 0 || end < begin)
      fail(ErrorCode::InvalidArgument, "mask row (batch " + std::to_string(r / b.lq) + ", query " +
                                           std::to_string(r % b.lq) + ") is [" + std::to_string(begin) + ", " +
                                           std::to_string(end) + "): need 0 <= begin <= end");
  }
  b.mask = m;
  return b;
}

size_t typed_length(const Napi::Value& v, DType dtype, const char* name) {
  const std::string why = std::string(" for dtype ") + dtype_name(dtype);
  return typed_array(v, storage_array_type(dtype), name, why).ElementLength();
}

void* tensor_data(const Napi::Value& v, DType dtype, const TensorShape& shape) {
  const std::string why = std::string(" for dtype ") + dtype_name(dtype);
  return checked_data(typed_array(v, storage_array_type(dtype), shape.name, why), shape);
}

float* f32_data(const Napi::Value& v, const TensorShape& shape) {
  return static_cast<float*>(checked_data(typed_array(v, napi_float32_array, shape.name, " (float32 always)"), shape));
}

}  // namespace xattn::binding
