// Tensor handles and the engine's upload/empty entry points.
#include "binding/tensor.h"

#include <cstring>
#include <string>
#include <vector>

#include "binding/async.h"
#include "binding/common.h"
#include "binding/engine.h"

namespace xattn::binding {

namespace {

Napi::FunctionReference* tensor_ctor = nullptr;

std::vector<int64_t> read_shape(const Napi::Value& v) {
  if (!v.IsArray()) fail(ErrorCode::InvalidArgument, "shape must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> s;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d)))
      fail(ErrorCode::InvalidArgument, "shape entries must be non-negative integers");
    s.push_back(static_cast<int64_t>(d));
  }
  return s;
}

struct Layout {
  DeviceTensor::Kind kind;
  DType dtype;
};

Layout read_layout(const std::string& name) {
  if (name == "int32") return {DeviceTensor::Kind::Int32, DType::F32};
  return {DeviceTensor::Kind::Float, parse_dtype(name)};
}

}  // namespace

Napi::Function Tensor::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Tensor",
                                 {InstanceAccessor("shape", &Tensor::Shape, nullptr),
                                  InstanceAccessor("dtype", &Tensor::DType, nullptr),
                                  InstanceMethod("download", &Tensor::Download),
                                  InstanceMethod("downloadInto", &Tensor::DownloadInto),
                                  InstanceMethod("dispose", &Tensor::Dispose)});
  tensor_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Tensor::Tensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tensor>(info) {}

Napi::Object Tensor::Wrap(Napi::Env, Engine* engine, TensorPtr t) {
  Napi::Object obj = tensor_ctor->New({});
  Tensor* self = Napi::ObjectWrap<Tensor>::Unwrap(obj);
  self->tensor_ = std::move(t);
  self->releaser_ = engine->releaser();
  return obj;
}

TensorPtr Tensor::Unwrap(const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !tensor_ctor || !v.As<Napi::Object>().InstanceOf(tensor_ctor->Value()))
    fail(ErrorCode::InvalidArgument, std::string(what) + " must be a Tensor");
  Tensor* t = Napi::ObjectWrap<Tensor>::Unwrap(v.As<Napi::Object>());
  if (!t->tensor_) fail(ErrorCode::InvalidArgument, std::string(what) + " was disposed");
  return t->tensor_;
}

Napi::Value Tensor::Shape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  if (tensor_)
    for (size_t i = 0; i < tensor_->shape().size(); ++i) a.Set(i, Napi::Number::New(info.Env(), tensor_->shape()[i]));
  return a;
}

Napi::Value Tensor::DType(const Napi::CallbackInfo& info) {
  if (!tensor_) return Napi::String::New(info.Env(), "disposed");
  return Napi::String::New(info.Env(), tensor_->kind() == DeviceTensor::Kind::Int32 ? "int32" : dtype_name(tensor_->dtype()));
}

// download(): a copy in host memory: Float32Array (float32), Uint16Array (bf16/fp16 bits), Int32Array.
Napi::Value Tensor::Download(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    TensorPtr t = Unwrap(Value(), "tensor");
    WorkerThread* worker = releaser_ ? releaser_->worker() : nullptr;
    require(worker != nullptr, ErrorCode::InvalidArgument, "download: the tensor's engine is closed");
    auto host = std::make_shared<std::vector<uint8_t>>();
    return run_on_worker<bool>(
        info.Env(), *worker,
        [t, host] {
          host->resize(t->bytes());
          t->backend_synchronize_and_copy(host->data());
          return true;
        },
        [t, host](Napi::Env env, bool&) -> Napi::Value {
          auto ab = Napi::ArrayBuffer::New(env, host->size());
          std::memcpy(ab.Data(), host->data(), host->size());
          const size_t n = static_cast<size_t>(t->numel());
          if (t->kind() == DeviceTensor::Kind::Int32) return Napi::Int32Array::New(env, n, ab, 0);
          if (t->dtype() == xattn::DType::F32) return Napi::Float32Array::New(env, n, ab, 0);
          return Napi::Uint16Array::New(env, n, ab, 0);
        });
  });
}

// downloadInto(target): the tensor's bytes copied into `target`, a TypedArray of exactly that many bytes,
// on the engine's thread: the JS thread allocates and copies nothing (a multi-GB checkpoint snapshot would
// stall it for seconds), and over a SharedArrayBuffer a worker thread can read the result in place.
Napi::Value Tensor::DownloadInto(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    TensorPtr t = Unwrap(Value(), "tensor");
    WorkerThread* worker = releaser_ ? releaser_->worker() : nullptr;
    require(worker != nullptr, ErrorCode::InvalidArgument, "downloadInto: the tensor's engine is closed");
    require(info.Length() >= 1 && info[0].IsTypedArray(), ErrorCode::InvalidArgument,
            "downloadInto(target: TypedArray)");
    // napi_get_typedarray_info, not TypedArray::ArrayBuffer(): the latter rejects SharedArrayBuffers.
    void* data = nullptr;
    size_t length = 0, offset = 0;
    napi_typedarray_type type;
    napi_value buffer;
    require(napi_get_typedarray_info(info.Env(), info[0], &type, &length, &data, &buffer, &offset) == napi_ok,
            ErrorCode::InvalidArgument, "downloadInto: cannot read the target array");
    const size_t bytes = info[0].As<Napi::TypedArray>().ByteLength();
    require(bytes == t->bytes(), ErrorCode::ShapeMismatch,
            "downloadInto: the target holds " + std::to_string(bytes) + " bytes but the tensor has " +
                std::to_string(t->bytes()));
    // The target stays referenced (so alive, and its memory in place) until the copy is done; the
    // reference is dropped on the JS thread.
    auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[0].As<Napi::Object>()));
    auto* dst = static_cast<uint8_t*>(data);
    return run_on_worker<bool>(
        info.Env(), *worker,
        [t, dst] {
          t->backend_synchronize_and_copy(dst);
          return true;
        },
        [keep](Napi::Env env, bool&) -> Napi::Value {
          keep->Reset();
          return env.Undefined();
        });
  });
}

Tensor::~Tensor() {
  if (releaser_ && tensor_) releaser_->release(std::move(tensor_));  // device memory is freed on the engine's thread
}

void Tensor::Dispose(const Napi::CallbackInfo&) {
  if (releaser_) releaser_->release(std::move(tensor_));
  tensor_.reset();
}

// upload(array, shape, dtype): Float32Array for float32 (or bf16/fp16, cast on the host),
// Uint16Array holding bf16/fp16 bits, Int32Array for int32.
Napi::Value Engine::Upload(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() >= 3 && info[0].IsTypedArray() && info[2].IsString(), ErrorCode::InvalidArgument,
            "upload(array: TypedArray, shape: number[], dtype: string)");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = read_shape(info[1]);
    const std::string dname = info[2].As<Napi::String>().Utf8Value();
    Layout lay = read_layout(dname);
    int64_t n64 = 1;
    for (int64_t s : shape) n64 *= s;
    const size_t n = static_cast<size_t>(n64);
    if (arr.ElementLength() != n)
      fail(ErrorCode::ShapeMismatch, "upload: the array has " + std::to_string(arr.ElementLength()) +
                                         " elements but the shape holds " + std::to_string(n));
    const size_t esize = lay.kind == DeviceTensor::Kind::Int32 ? 4 : dtype_size(lay.dtype);
    auto host = std::make_shared<std::vector<uint8_t>>(n * esize);
    const auto type = arr.TypedArrayType();
    const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    if (lay.kind == DeviceTensor::Kind::Int32 && type == napi_int32_array) {
      std::memcpy(host->data(), src, host->size());
    } else if (lay.kind == DeviceTensor::Kind::Float && type == napi_float32_array) {
      for (size_t i = 0; i < n; ++i) store_from_f32(host->data(), lay.dtype, i, reinterpret_cast<const float*>(src)[i]);
    } else if (lay.kind == DeviceTensor::Kind::Float && lay.dtype != xattn::DType::F32 && type == napi_uint16_array) {
      std::memcpy(host->data(), src, host->size());
    } else {
      fail(ErrorCode::InvalidArgument, "upload: a " + dname +
                                           " tensor takes a Float32Array (float types), a Uint16Array (bfloat16/float16 bits) "
                                           "or an Int32Array (int32)");
    }
    return run_on_worker<TensorPtr>(
        info.Env(), *worker_, [this, shape, lay, host] {
          auto t = std::make_shared<DeviceTensor>(backend_, shape, lay.dtype, lay.kind);
          backend_->from_host(t->data(), host->data(), host->size());
          return t;
        },
        [this](Napi::Env env, TensorPtr& t) -> Napi::Value { return Tensor::Wrap(env, this, t); });
  });
}

// empty(shape, dtype): a zero-filled tensor.
Napi::Value Engine::Empty(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    std::vector<int64_t> shape = read_shape(info[0]);
    Layout lay = read_layout(info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "float32");
    return run_on_worker<TensorPtr>(
        info.Env(), *worker_, [this, shape, lay] {
          auto t = std::make_shared<DeviceTensor>(backend_, shape, lay.dtype, lay.kind);
          backend_->zero(t->data(), t->bytes());
          return t;
        },
        [this](Napi::Env env, TensorPtr& t) -> Napi::Value { return Tensor::Wrap(env, this, t); });
  });
}

}  // namespace xattn::binding
