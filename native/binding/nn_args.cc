#include "binding/nn_args.h"

#include <cstring>

#ifdef XATTN_WITH_CUDA
#include "cuda/nn_factory.h"
#endif

namespace xattn::binding {

NnOps& Engine::nn_ops() {
  if (!nn_ops_) {
#ifdef XATTN_WITH_CUDA
    if (std::strcmp(backend_->name(), "cuda") == 0) nn_ops_ = make_cuda_nn_ops(*backend_);  // cuBLAS + kernels
#endif
    if (!nn_ops_) nn_ops_ = make_nn_ops(*backend_);
  }
  return *nn_ops_;
}

namespace nn {

Napi::Value wrap(Napi::Env env, Engine* e, const TensorPtr& t) { return Tensor::Wrap(env, e, t); }

Napi::Value Done(Napi::Env env, bool&) { return env.Undefined(); }

TensorPtr float_tensor(const Napi::Value& v, const char* what) {
  TensorPtr t = Tensor::Unwrap(v, what);
  require(t->kind() == DeviceTensor::Kind::Float, ErrorCode::InvalidArgument,
          std::string(what) + " must be a floating-point tensor, got " + t->describe());
  return t;
}

TensorPtr f32_tensor(const Napi::Value& v, const char* what) {
  TensorPtr t = float_tensor(v, what);
  require(t->dtype() == DType::F32, ErrorCode::InvalidArgument, std::string(what) + " must be float32, got " + t->describe());
  return t;
}

std::vector<TensorPtr> f32_list(const Napi::Value& v, const char* what) {
  require(v.IsArray(), ErrorCode::InvalidArgument, std::string(what) + " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorPtr> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(f32_tensor(a.Get(i), what));
  return out;
}

void need_numel(const TensorPtr& t, int64_t n, const char* what) {
  if (t->numel() != n)
    fail(ErrorCode::ShapeMismatch, std::string(what) + " is " + t->describe() + " (" + std::to_string(t->numel()) +
                                       " elements), expected " + std::to_string(n) + " elements");
}

std::vector<int64_t> shape_or(const Napi::Object& o, const char* key, std::vector<int64_t> fallback, int64_t numel) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  require(o.Get(key).IsArray(), ErrorCode::InvalidArgument, std::string(key) + " must be an array of integers");
  Napi::Array a = o.Get(key).As<Napi::Array>();
  std::vector<int64_t> s;
  int64_t n = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    require(a.Get(i).IsNumber(), ErrorCode::InvalidArgument, std::string(key) + " must be an array of integers");
    s.push_back(a.Get(i).As<Napi::Number>().Int64Value());
    n *= s.back();
  }
  require(n == numel, ErrorCode::ShapeMismatch, std::string(key) + " must hold " + std::to_string(numel) + " elements");
  return s;
}

bool flag(const Napi::Object& o, const char* key) { return o.Has(key) && o.Get(key).ToBoolean().Value(); }

}  // namespace nn
}  // namespace xattn::binding
