// Model ops for the training runtime: addon.nn.<op>(engine, ...) -> Promise, run on the engine's
// worker thread in submission order (after any queued attention), through the engine's NnOps.
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "binding/areas.h"
#include "binding/async.h"
#include "binding/common.h"
#include "binding/engine.h"
#include "binding/tensor.h"

namespace xattn::binding {

NnOps& Engine::nn_ops() {
  // CUDA: construct the cuBLAS-backed ops here (#ifdef XATTN_WITH_CUDA) once native/cuda provides them.
  if (!nn_ops_) nn_ops_ = make_nn_ops(*backend_);
  return *nn_ops_;
}

namespace {

Napi::Value wrap(Napi::Env env, Engine* e, const TensorPtr& t) { return Tensor::Wrap(env, e, t); }

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
  // For finish callbacks: resolves to a function wrapping a tensor with the engine (fetched from its own
  // reference then, since napi_values of this call's scope are dead by the time the work finishes).
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

std::vector<TensorPtr> f32_list(const Napi::Value& v, const char* what) {
  require(v.IsArray(), ErrorCode::InvalidArgument, std::string(what) + " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorPtr> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(f32_tensor(a.Get(i), what));
  return out;
}

Napi::Value Done(Napi::Env env, bool&) { return env.Undefined(); }

bool flag(const Napi::Object& o, const char* key) { return o.Has(key) && o.Get(key).ToBoolean().Value(); }

// gemm(engine, a, b, {m, n, k, transA, transB, alpha, accumulate, out, outShape, outDtype}) -> C (undefined with out)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 4, "nn.gemm(engine, a, b, {m, n, k, ...})");
    Napi::Object o = c.opts(3);
    GemmArgs g;
    g.m = require_int(o, "m"), g.n = require_int(o, "n"), g.k = require_int(o, "k");
    require(g.m >= 0 && g.n >= 0 && g.k >= 0, ErrorCode::InvalidArgument, "gemm: m, n and k must be >= 0");
    g.trans_a = flag(o, "transA"), g.trans_b = flag(o, "transB"), g.accumulate = flag(o, "accumulate");
    g.alpha = static_cast<float>(get_number(o, "alpha", 1.0));
    TensorPtr a = float_tensor(info[1], "a"), b = float_tensor(info[2], "b");
    need_numel(a, g.m * g.k, "gemm: a");
    need_numel(b, g.k * g.n, "gemm: b");
    const bool given = o.Has("out") && !o.Get("out").IsUndefined();
    TensorPtr out = given ? float_tensor(o.Get("out"), "out") : nullptr;
    if (out) need_numel(out, g.m * g.n, "gemm: out");
    require(out || !g.accumulate, ErrorCode::InvalidArgument, "gemm: accumulate needs an out tensor");
    if (!out) out = c.alloc(shape_or(o, "outShape", {g.m, g.n}, g.m * g.n), parse_dtype(get_string(o, "outDtype", "float32")));
    g.a = a->data(), g.a_dtype = a->dtype(), g.b = b->data(), g.b_dtype = b->dtype();
    g.c = out->data(), g.c_dtype = out->dtype();
    // Into a given `out`: resolves to undefined (a second JS handle would keep the memory alive until GC).
    return c.run<bool>([g, a, b, out](NnOps& ops) { return ops.gemm(g), true; }, given ? Done : c.resolve(out));
  });
}

RmsNormArgs norm_args(const TensorPtr& x, const TensorPtr& w, const Napi::Object& o) {
  RmsNormArgs a;
  a.n = w->numel();
  require(a.n > 0 && x->numel() % a.n == 0, ErrorCode::ShapeMismatch,
          "rmsnorm: x (" + x->describe() + ") must hold whole rows of the weight's " + std::to_string(a.n) + " elements");
  a.rows = x->numel() / a.n;
  a.eps = static_cast<float>(get_number(o, "eps", 1e-5));
  a.x = x->as<float>(), a.w = w->as<float>();
  return a;
}

// rmsnorm(engine, x, w, {eps, outDtype, outShape}) -> {y, rstd}
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 3, "nn.rmsnorm(engine, x, w, opts)");
    Napi::Object o = c.opts(3);
    TensorPtr x = f32_tensor(info[1], "x"), w = f32_tensor(info[2], "w");
    RmsNormArgs a = norm_args(x, w, o);
    TensorPtr y = c.alloc(shape_or(o, "outShape", x->shape(), x->numel()), parse_dtype(get_string(o, "outDtype", "float32")));
    TensorPtr rstd = c.alloc({a.rows}, DType::F32);
    return c.run<bool>([a, x, w, y, rstd](NnOps& ops) { return ops.rmsnorm_fwd(a, y->data(), y->dtype(), rstd->as<float>()), true; },
                       [e = c.engine, y, rstd](Napi::Env env, bool&) -> Napi::Value {
                         Napi::Object r = Napi::Object::New(env);
                         r.Set("y", wrap(env, e, y));
                         r.Set("rstd", wrap(env, e, rstd));
                         return r;
                       });
  });
}

// rmsnormBackward(engine, x, w, rstd, dy, dw, {eps, dx}) -> dx, or undefined when dx is given (accumulated into, like dw)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 6, "nn.rmsnormBackward(engine, x, w, rstd, dy, dw, opts)");
    Napi::Object o = c.opts(6);
    TensorPtr x = f32_tensor(info[1], "x"), w = f32_tensor(info[2], "w"), rstd = f32_tensor(info[3], "rstd");
    TensorPtr dy = f32_tensor(info[4], "dy"), dw = f32_tensor(info[5], "dw");
    RmsNormArgs a = norm_args(x, w, o);
    need_numel(rstd, a.rows, "rmsnormBackward: rstd");
    need_numel(dy, x->numel(), "rmsnormBackward: dy");
    need_numel(dw, a.n, "rmsnormBackward: dw");
    const bool acc = o.Has("dx") && !o.Get("dx").IsUndefined();
    TensorPtr dx = acc ? f32_tensor(o.Get("dx"), "dx") : c.alloc(x->shape(), DType::F32);
    need_numel(dx, x->numel(), "rmsnormBackward: dx");
    return c.run<bool>(
        [a, x, w, rstd, dy, dw, dx, acc](NnOps& ops) {
          return ops.rmsnorm_bwd(a, rstd->as<float>(), dy->as<float>(), dx->as<float>(), acc, dw->as<float>()), true;
        },
        acc ? Done : c.resolve(dx));
  });
}

// gatedResidual(engine, x, a, gate) -> x + tanh(gate) * a
Napi::Value GatedResidual(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 4, "nn.gatedResidual(engine, x, a, gate)");
    TensorPtr x = f32_tensor(info[1], "x"), a = f32_tensor(info[2], "a"), gate = f32_tensor(info[3], "gate");
    need_numel(a, x->numel(), "gatedResidual: a");
    need_numel(gate, 1, "gatedResidual: gate");
    TensorPtr out = c.alloc(x->shape(), DType::F32);
    return c.run<bool>(
        [x, a, gate, out](NnOps& ops) {
          return ops.gated_residual_fwd(x->numel(), x->as<float>(), a->as<float>(), gate->as<float>(), out->as<float>()), true;
        },
        c.resolve(out));
  });
}

// gatedResidualBackward(engine, dout, a, gate, dgate) -> da   (dgate accumulated into)
Napi::Value GatedResidualBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 5, "nn.gatedResidualBackward(engine, dout, a, gate, dgate)");
    TensorPtr dout = f32_tensor(info[1], "dout"), a = f32_tensor(info[2], "a");
    TensorPtr gate = f32_tensor(info[3], "gate"), dgate = f32_tensor(info[4], "dgate");
    need_numel(a, dout->numel(), "gatedResidualBackward: a");
    need_numel(gate, 1, "gatedResidualBackward: gate");
    need_numel(dgate, 1, "gatedResidualBackward: dgate");
    TensorPtr da = c.alloc(dout->shape(), DType::F32);
    return c.run<bool>(
        [dout, a, gate, dgate, da](NnOps& ops) {
          ops.gated_residual_bwd(dout->numel(), dout->as<float>(), a->as<float>(), gate->as<float>(), da->as<float>(),
                                 dgate->as<float>());
          return true;
        },
        c.resolve(da));
  });
}

// squaredError(engine, pred, target, gradScale) -> {sum, grad}: sum((pred-target)^2), grad = 2*scale*(pred-target)
Napi::Value SquaredError(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 4, "nn.squaredError(engine, pred, target, gradScale)");
    TensorPtr pred = f32_tensor(info[1], "pred"), target = float_tensor(info[2], "target");
    need_numel(target, pred->numel(), "squaredError: target");
    require(info[3].IsNumber(), ErrorCode::InvalidArgument, "squaredError: gradScale must be a number");
    const float scale = info[3].As<Napi::Number>().FloatValue();
    TensorPtr grad = c.alloc(pred->shape(), DType::F32);
    return c.run<double>(
        [pred, target, grad, scale](NnOps& ops) {
          return ops.squared_error(pred->numel(), pred->as<float>(), target->data(), target->dtype(), scale, grad->as<float>());
        },
        [e = c.engine, grad](Napi::Env env, double& sum) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("sum", Napi::Number::New(env, sum));
          r.Set("grad", wrap(env, e, grad));
          return r;
        });
  });
}

// sumSquares(engine, [tensors]) -> number (fp64, fixed order)
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 2, "nn.sumSquares(engine, tensors)");
    std::vector<TensorPtr> ts = f32_list(info[1], "sumSquares: tensors");
    return c.run<double>(
        [ts](NnOps& ops) {
          double s = 0.0;
          for (const auto& t : ts) s += ops.sum_squares(t->numel(), t->as<float>());
          return s;
        },
        [](Napi::Env env, double& s) -> Napi::Value { return Napi::Number::New(env, s); });
  });
}

// axpy(engine, y, x, alpha): y += alpha * x, in place
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 4, "nn.axpy(engine, y, x, alpha)");
    TensorPtr y = f32_tensor(info[1], "y"), x = f32_tensor(info[2], "x");
    need_numel(x, y->numel(), "axpy: x");
    require(info[3].IsNumber(), ErrorCode::InvalidArgument, "axpy: alpha must be a number");
    const float alpha = info[3].As<Napi::Number>().FloatValue();
    return c.run<bool>([y, x, alpha](NnOps& ops) { return ops.axpy(y->numel(), alpha, x->as<float>(), y->as<float>()), true; }, Done);
  });
}

// scale(engine, [tensors], alpha) and fill(engine, [tensors], value), in place
Napi::Value ScaleOrFill(const Napi::CallbackInfo& info, bool fill) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 3, fill ? "nn.fill(engine, tensors, value)" : "nn.scale(engine, tensors, alpha)");
    std::vector<TensorPtr> ts = f32_list(info[1], fill ? "fill: tensors" : "scale: tensors");
    require(info[2].IsNumber(), ErrorCode::InvalidArgument, "the scalar must be a number");
    const float v = info[2].As<Napi::Number>().FloatValue();
    return c.run<bool>(
        [ts, v, fill](NnOps& ops) {
          for (const auto& t : ts) fill ? ops.fill(t->numel(), v, t->as<float>()) : ops.scale(t->numel(), v, t->as<float>());
          return true;
        },
        Done);
  });
}
Napi::Value Scale(const Napi::CallbackInfo& info) { return ScaleOrFill(info, false); }
Napi::Value Fill(const Napi::CallbackInfo& info) { return ScaleOrFill(info, true); }

// cast(engine, x, dtype, shape?) -> a new tensor (also a copy when the dtype is unchanged)
Napi::Value Cast(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 3, "nn.cast(engine, x, dtype, shape?)");
    TensorPtr x = float_tensor(info[1], "x");
    require(info[2].IsString(), ErrorCode::InvalidArgument, "cast: dtype must be a string");
    Napi::Object o = Napi::Object::New(info.Env());
    if (info.Length() > 3) o.Set("shape", info[3]);
    TensorPtr out = c.alloc(shape_or(o, "shape", x->shape(), x->numel()), parse_dtype(info[2].As<Napi::String>().Utf8Value()));
    return c.run<bool>([x, out](NnOps& ops) { return ops.cast(x->numel(), x->data(), x->dtype(), out->data(), out->dtype()), true; },
                       c.resolve(out));
  });
}

// adamw(engine, [{param, grad, m, v, weightDecay}], {lr, beta1, beta2, eps, step})
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 3, "nn.adamw(engine, groups, hyper)");
    require(info[1].IsArray(), ErrorCode::InvalidArgument, "adamw: groups must be an array");
    Napi::Object h = c.opts(2);
    const int64_t step = require_int(h, "step");
    require(step >= 1, ErrorCode::InvalidArgument, "adamw: step must be >= 1");
    AdamWArgs base;
    base.lr = static_cast<float>(get_number(h, "lr", 0)), base.eps = static_cast<float>(get_number(h, "eps", 1e-8));
    const double b1 = get_number(h, "beta1", 0.9), b2 = get_number(h, "beta2", 0.999);
    base.beta1 = static_cast<float>(b1), base.beta2 = static_cast<float>(b2);
    base.bias1 = static_cast<float>(1.0 - std::pow(b1, static_cast<double>(step)));
    base.bias2 = static_cast<float>(1.0 - std::pow(b2, static_cast<double>(step)));
    struct Group { TensorPtr p, g, m, v; AdamWArgs h; };
    std::vector<Group> groups;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      require(a.Get(i).IsObject(), ErrorCode::InvalidArgument, "adamw: each group is {param, grad, m, v, weightDecay}");
      Napi::Object g = a.Get(i).As<Napi::Object>();
      Group gr{f32_tensor(g.Get("param"), "param"), f32_tensor(g.Get("grad"), "grad"), f32_tensor(g.Get("m"), "m"),
               f32_tensor(g.Get("v"), "v"), base};
      gr.h.weight_decay = static_cast<float>(get_number(g, "weightDecay", 0));
      for (const auto* t : {&gr.g, &gr.m, &gr.v}) need_numel(*t, gr.p->numel(), "adamw: grad/m/v");
      groups.push_back(std::move(gr));
    }
    return c.run<bool>(
        [groups](NnOps& ops) {
          for (const auto& g : groups) ops.adamw(g.p->numel(), g.h, g.p->as<float>(), g.g->as<float>(), g.m->as<float>(), g.v->as<float>());
          return true;
        },
        Done);
  });
}

struct Reduced {
  std::vector<float> extras;
  double bytes = 0, seconds = 0;
};

// allReduceSum(engine, [tensors], extras: number[]) -> {extras, bytesSent, seconds}: one collective for
// every tensor plus a few host scalars (loss partial sums, stop flags) packed at the end.
Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 2, "nn.allReduceSum(engine, tensors, extras?)");
    std::vector<TensorPtr> ts = f32_list(info[1], "allReduceSum: tensors");
    std::vector<float> extras;
    if (info.Length() > 2 && info[2].IsArray()) {
      Napi::Array e = info[2].As<Napi::Array>();
      for (uint32_t i = 0; i < e.Length(); ++i) extras.push_back(e.Get(i).ToNumber().FloatValue());
    }
    Engine* e = c.engine;
    return run_on_worker<Reduced>(
        c.env, e->worker(),
        [e, ts, extras] {
          Backend& be = *e->backend();
          size_t total = extras.size();
          for (const auto& t : ts) total += static_cast<size_t>(t->numel());
          DeviceTensor flat(e->backend(), {static_cast<int64_t>(total)}, DType::F32);
          float* f = flat.as<float>();
          size_t off = 0;
          for (const auto& t : ts) be.copy(f + off, t->data(), t->bytes()), off += static_cast<size_t>(t->numel());
          if (!extras.empty()) be.from_host(f + off, extras.data(), extras.size() * sizeof(float));
          be.synchronize();
          const uint64_t sent0 = e->transport().bytes_sent();
          const auto t0 = std::chrono::steady_clock::now();
          e->transport().all_reduce_sum_f32(f, total);
          be.synchronize();
          Reduced r;
          r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          r.bytes = static_cast<double>(e->transport().bytes_sent() - sent0);
          off = 0;
          for (const auto& t : ts) be.copy(t->data(), f + off, t->bytes()), off += static_cast<size_t>(t->numel());
          r.extras.resize(extras.size());
          if (!extras.empty()) be.to_host(r.extras.data(), f + off, extras.size() * sizeof(float));
          be.synchronize();
          return r;
        },
        [](Napi::Env env, Reduced& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          Napi::Array a = Napi::Array::New(env, r.extras.size());
          for (size_t i = 0; i < r.extras.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, r.extras[i]));
          o.Set("extras", a);
          o.Set("bytesSent", Napi::Number::New(env, r.bytes));
          o.Set("seconds", Napi::Number::New(env, r.seconds));
          return o;
        });
  });
}

}  // namespace

void InitNn(Napi::Env env, Napi::Object exports) {
  Napi::Object nn = Napi::Object::New(env);
  nn.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  nn.Set("rmsnorm", Napi::Function::New(env, RmsNorm, "rmsnorm"));
  nn.Set("rmsnormBackward", Napi::Function::New(env, RmsNormBackward, "rmsnormBackward"));
  nn.Set("gatedResidual", Napi::Function::New(env, GatedResidual, "gatedResidual"));
  nn.Set("gatedResidualBackward", Napi::Function::New(env, GatedResidualBackward, "gatedResidualBackward"));
  nn.Set("squaredError", Napi::Function::New(env, SquaredError, "squaredError"));
  nn.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  nn.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  nn.Set("scale", Napi::Function::New(env, Scale, "scale"));
  nn.Set("fill", Napi::Function::New(env, Fill, "fill"));
  nn.Set("cast", Napi::Function::New(env, Cast, "cast"));
  nn.Set("adamw", Napi::Function::New(env, AdamW, "adamw"));
  nn.Set("allReduceSum", Napi::Function::New(env, AllReduceSum, "allReduceSum"));
  exports.Set("nn", nn);
}

}  // namespace xattn::binding
