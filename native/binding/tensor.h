// JavaScript handle of a DeviceTensor: shape, dtype, download(), downloadInto(), dispose().
#pragma once
#include <napi.h>

#include <memory>

#include "binding/releaser.h"
#include "core/device_tensor.h"

namespace xattn::binding {

class Engine;

class Tensor : public Napi::ObjectWrap<Tensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, Engine* engine, TensorPtr t);
  // The tensor behind a JS value, or a coded error naming `what`.
  static TensorPtr Unwrap(const Napi::Value& v, const char* what);
  using Napi::ObjectWrap<Tensor>::Unwrap;
  explicit Tensor(const Napi::CallbackInfo& info);
  ~Tensor() override;

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value DownloadInto(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  TensorPtr tensor_;
  std::shared_ptr<Releaser> releaser_;
};

}  // namespace xattn::binding
