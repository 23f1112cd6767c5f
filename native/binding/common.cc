#include "binding/common.h"

#include "binding/areas.h"
#ifdef XATTN_WITH_CUDA
#include "cuda/cuda_factory.h"
#endif

namespace xattn::binding {

Napi::Error make_error(Napi::Env env, xattn::ErrorCode code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, std::string("XATTN_E_") + xattn::error_code_name(code)));
  return e;
}

Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& fn) {
  try {
    return fn();
  } catch (const xattn::XattnError& e) {
    throw make_error(env, e.code(), e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw make_error(env, xattn::ErrorCode::Internal, e.what());
  }
}

int64_t get_int(const Napi::Object& o, const char* key, int64_t fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  return require_int(o, key);
}

int64_t require_int(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) fail(ErrorCode::InvalidArgument, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)))
    fail(ErrorCode::InvalidArgument, std::string(key) + " must be an integer");
  return static_cast<int64_t>(d);
}

double get_number(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) fail(ErrorCode::InvalidArgument, std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsString()) fail(ErrorCode::InvalidArgument, std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

void InitCommon(Napi::Env env, Napi::Object exports) {
#ifdef XATTN_WITH_CUDA
  exports.Set("cudaBuilt", Napi::Boolean::New(env, true));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), xattn::cuda_device_count());
              }));
  exports.Set("cudaDeviceName", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return guard(info.Env(), [&]() -> Napi::Value {
                  return Napi::String::New(info.Env(), xattn::cuda_device_name(info[0].As<Napi::Number>().Int32Value()));
                });
              }));
#else
  exports.Set("cudaBuilt", Napi::Boolean::New(env, false));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), 0);
              }));
#endif
}

}  // namespace xattn::binding
