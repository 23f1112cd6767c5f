// Synchronous test/reference surface over host typed arrays: exports.kernels runs the CPU backend's
// kernels on the calling thread (small shapes only; the engine never goes through here).
#include <napi.h>

#include "binding/areas.h"
#include "binding/common.h"
#include "binding/kernels_args.h"
#include "core/cpu_backend.h"
#include "core/thread_pool.h"

namespace xattn::binding {

namespace {

CpuBackend& cpu() {
  static CpuBackend backend;
  return backend;
}

// The extents of the tensors of one attention block.
TensorShape q_shape(const char* name, const AttnDims& d, int64_t lq, int64_t d_last) {
  return {name, {{"batch", d.batch}, {"lq", lq}, {"heads", d.heads}, {"headDim", d_last}}};
}
TensorShape kv_shape(const char* name, const AttnDims& d, int64_t lkv) {
  return {name, {{"batch", d.batch}, {"lkv", lkv}, {"kvHeads", d.kv_heads}, {"headDim", d.head_dim}}};
}
TensorShape row_shape(const char* name, const AttnDims& d, int64_t lq) {
  return {name, {{"batch", d.batch}, {"heads", d.heads}, {"lq", lq}}};
}

Napi::Float32Array new_f32(Napi::Env env, const TensorShape& s) {
  return Napi::Float32Array::New(env, static_cast<size_t>(s.elements()));  // zero-filled
}

Napi::Value AttnForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const AttnBlock b = read_block(info[4], d);
    const AttnFwdIO io0{tensor_data(info[1], d.dtype, q_shape("q", d, b.lq, d.head_dim)),
                        tensor_data(info[2], d.dtype, kv_shape("k", d, b.lkv)),
                        tensor_data(info[3], d.dtype, kv_shape("v", d, b.lkv)), nullptr, nullptr};
    Napi::Float32Array o = new_f32(env, q_shape("o", d, b.lq, d.head_dim));
    Napi::Float32Array lse = new_f32(env, row_shape("lse", d, b.lq));
    AttnFwdIO io = io0;
    io.o = o.Data();
    io.lse = lse.Data();
    cpu().attn_fwd(d, b, io);
    Napi::Object out = Napi::Object::New(env);
    out.Set("o", o);
    out.Set("lse", lse);
    return out;
  });
}

Napi::Value AttnBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const AttnBlock b = read_block(info[7], d);
    AttnBwdIO io{tensor_data(info[1], d.dtype, q_shape("q", d, b.lq, d.head_dim)),
                 tensor_data(info[2], d.dtype, kv_shape("k", d, b.lkv)),
                 tensor_data(info[3], d.dtype, kv_shape("v", d, b.lkv)),
                 tensor_data(info[4], d.dtype, q_shape("dout", d, b.lq, d.head_dim)),
                 f32_data(info[5], row_shape("lse", d, b.lq)),
                 f32_data(info[6], row_shape("drow", d, b.lq)),
                 nullptr, nullptr, nullptr};
    Napi::Float32Array dq = new_f32(env, q_shape("dq", d, b.lq, d.head_dim));
    Napi::Float32Array dk = new_f32(env, kv_shape("dk", d, b.lkv));
    Napi::Float32Array dv = new_f32(env, kv_shape("dv", d, b.lkv));
    io.dq = dq.Data();
    io.dk = dk.Data();
    io.dv = dv.Data();
    cpu().attn_bwd(d, b, io);
    Napi::Object out = Napi::Object::New(env);
    out.Set("dq", dq);
    out.Set("dk", dk);
    out.Set("dv", dv);
    return out;
  });
}

// lseMerge(dims, lq, accO, accLse, partO, partLse): merges part into acc in place.
Napi::Value LseMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const int64_t lq = read_count(info[1], "lq");
    float* acc_o = f32_data(info[2], q_shape("accO", d, lq, d.head_dim));
    float* acc_lse = f32_data(info[3], row_shape("accLse", d, lq));
    const float* part_o = f32_data(info[4], q_shape("partO", d, lq, d.head_dim));
    const float* part_lse = f32_data(info[5], row_shape("partLse", d, lq));
    cpu().lse_merge(d, lq, acc_o, acc_lse, part_o, part_lse);
    return env.Undefined();
  });
}

// partialToWire(dims, lq, o) -> {wire: Uint16Array [B, lq, H, D] float16, scale: Float32Array [B, H, lq]}
Napi::Value PartialToWire(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const int64_t lq = read_count(info[1], "lq");
    const float* o = f32_data(info[2], q_shape("o", d, lq, d.head_dim));
    Napi::Uint16Array wire = Napi::Uint16Array::New(env, d.batch * lq * d.heads * d.head_dim);
    Napi::Float32Array scale = new_f32(env, row_shape("scale", d, lq));
    cpu().partial_to_wire(d, lq, o, wire.Data(), scale.Data());
    Napi::Object out = Napi::Object::New(env);
    out.Set("wire", wire);
    out.Set("scale", scale);
    return out;
  });
}

// partialFromWire(dims, lq, wire, scale) -> o: Float32Array [B, lq, H, D]
Napi::Value PartialFromWire(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const int64_t lq = read_count(info[1], "lq");
    const auto* wire = static_cast<const uint16_t*>(tensor_data(info[2], DType::F16, q_shape("wire", d, lq, d.head_dim)));
    const float* scale = f32_data(info[3], row_shape("scale", d, lq));
    Napi::Float32Array o = new_f32(env, q_shape("o", d, lq, d.head_dim));
    cpu().partial_from_wire(d, lq, wire, scale, o.Data());
    return o;
  });
}

// rowDot(dims, lq, dout, out) -> drow [batch, heads, lq]
Napi::Value RowDot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const AttnDims d = read_dims(info[0]);
    const int64_t lq = read_count(info[1], "lq");
    const void* dout = tensor_data(info[2], d.dtype, q_shape("dout", d, lq, d.head_dim));
    const void* out = tensor_data(info[3], d.dtype, q_shape("out", d, lq, d.head_dim));
    Napi::Float32Array drow = new_f32(env, row_shape("drow", d, lq));
    cpu().row_dot(d, lq, dout, out, drow.Data());
    return drow;
  });
}

Napi::Value CastFromF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const DType to = read_dtype(info[0]);
    const size_t n = typed_length(info[1], DType::F32, "src");
    const float* src = n ? f32_data(info[1], {"src", {{"n", static_cast<int64_t>(n)}}}) : nullptr;
    if (to == DType::F32) {
      Napi::Float32Array dst = Napi::Float32Array::New(env, n);
      cpu().cast_from_f32(to, src, dst.Data(), n);
      return dst;
    }
    Napi::Uint16Array dst = Napi::Uint16Array::New(env, n);
    cpu().cast_from_f32(to, src, dst.Data(), n);
    return dst;
  });
}

Napi::Value CastToF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const DType from = read_dtype(info[0]);
    const size_t n = typed_length(info[1], from, "src");
    const void* src = n ? tensor_data(info[1], from, {"src", {{"n", static_cast<int64_t>(n)}}}) : nullptr;
    Napi::Float32Array dst = Napi::Float32Array::New(env, n);
    cpu().cast_to_f32(from, src, dst.Data(), n);
    return dst;
  });
}

// The CPU pool's thread count (XATTN_CPU_THREADS or the hardware's), so tests can see which one ran.
Napi::Value CpuThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value { return Napi::Number::New(env, ThreadPool::shared().size()); });
}

}  // namespace

void InitKernels(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("attnForward", Napi::Function::New(env, AttnForward, "attnForward"));
  k.Set("attnBackward", Napi::Function::New(env, AttnBackward, "attnBackward"));
  k.Set("lseMerge", Napi::Function::New(env, LseMerge, "lseMerge"));
  k.Set("partialToWire", Napi::Function::New(env, PartialToWire, "partialToWire"));
  k.Set("partialFromWire", Napi::Function::New(env, PartialFromWire, "partialFromWire"));
  k.Set("rowDot", Napi::Function::New(env, RowDot, "rowDot"));
  k.Set("castFromF32", Napi::Function::New(env, CastFromF32, "castFromF32"));
  k.Set("castToF32", Napi::Function::New(env, CastToF32, "castToF32"));
  k.Set("cpuThreads", Napi::Function::New(env, CpuThreads, "cpuThreads"));
  exports.Set("kernels", k);
}

}  // namespace xattn::binding
