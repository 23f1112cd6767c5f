// Shared by the nn binding files: argument readers and the per-call helper that runs an op on the
// engine's worker thread through its NnOps.
#pragma once
#include <napi.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "binding/async.h"
#include "binding/common.h"
#include "binding/engine.h"
#include "binding/tensor.h"

namespace xattn::binding::nn {

Napi::Value wrap(Napi::Env env, Engine* e, const TensorPtr& t);
Napi::Value Done(Napi::Env env, bool&);

// The arguments of one op call (used synchronously, never captured by the worker's lambdas).
struct Call {
  Napi::Env env;
  Engine* engine;
  const Napi::CallbackInfo& info;

  Call(const Napi::CallbackInfo& i, size_t min_args, const char* usage)
      : env(i.Env()), engine(Engine::Unwrap(i[0])), info(i) {
    require(i.Length() >= min_args, ErrorCode::InvalidArgument, usage);
  }
  Napi::Object opts(size_t idx) const {
    return info.Length() > idx && info[idx].IsObject() ? info[idx].As<Napi::Object>() : Napi::Object::New(env);
  }
  // A finish callback wrapping a tensor with the engine (napi_values of this call's scope are dead by
  // the time the work finishes, so nothing of them is captured).
  std::function<Napi::Value(Napi::Env, bool&)> resolve(const TensorPtr& t) const {
    Engine* e = engine;
    return [e, t](Napi::Env env, bool&) { return wrap(env, e, t); };
  }
  TensorPtr alloc(std::vector<int64_t> shape, DType dtype) const {
    return std::make_shared<DeviceTensor>(engine->backend(), std::move(shape), dtype);
  }
  template <typename R>
  Napi::Value run(std::function<R(NnOps&)> work, std::function<Napi::Value(Napi::Env, R&)> done) const {
    Engine* e = engine;
    return run_on_worker<R>(env, e->worker(), [e, work] { return work(e->nn_ops()); }, std::move(done));
  }
};

TensorPtr float_tensor(const Napi::Value& v, const char* what);
TensorPtr f32_tensor(const Napi::Value& v, const char* what);
std::vector<TensorPtr> f32_list(const Napi::Value& v, const char* what);
void need_numel(const TensorPtr& t, int64_t n, const char* what);
// opts[key] as a shape holding `numel` elements, or `fallback` when absent.
std::vector<int64_t> shape_or(const Napi::Object& o, const char* key, std::vector<int64_t> fallback, int64_t numel);
bool flag(const Napi::Object& o, const char* key);

// Registration of the optimizer / collective ops (nn_train.cc) on the addon's `nn` object.
void InitTrainOps(Napi::Env env, Napi::Object nn);

}  // namespace xattn::binding::nn
