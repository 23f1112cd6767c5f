// Model ops for the training runtime: addon.nn.<op>(engine, ...) -> Promise, run on the engine's
// worker thread in submission order (after any queued attention), through the engine's NnOps.
// This file: projections, norms, the gate, the loss and casts; nn_train.cc: optimizer and collectives.
#include "binding/areas.h"
#include "binding/nn_args.h"

namespace xattn::binding {
namespace nn {
namespace {

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
    require(!out || (out != a && out != b), ErrorCode::InvalidArgument, "gemm: out must not be a or b (it is written while they are read)");
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

// rmsnormBackward(engine, x, w, rstd, dy, dw, {eps, dx, outDtype}) -> a new dx (in outDtype, default float32), or
// undefined when dx is given (a float32 tensor it is accumulated into, like dw)
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
    require(!acc || !o.Has("outDtype"), ErrorCode::InvalidArgument, "rmsnormBackward: outDtype is for a new dx, not one accumulated into");
    TensorPtr dx = acc ? f32_tensor(o.Get("dx"), "dx") : c.alloc(x->shape(), parse_dtype(get_string(o, "outDtype", "float32")));
    need_numel(dx, x->numel(), "rmsnormBackward: dx");
    require(dx != dy && dx != x, ErrorCode::InvalidArgument, "rmsnormBackward: dx must not be x or dy");
    return c.run<bool>(
        [a, x, w, rstd, dy, dw, dx, acc](NnOps& ops) {
          return ops.rmsnorm_bwd(a, rstd->as<float>(), dy->as<float>(), dx->data(), dx->dtype(), acc, dw->as<float>()), true;
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

// randn(engine, out, {key, std, width, rows, rowOffset, totalRows}): fills the float tensor `out`, a
// [batch, rows, width] shard starting at row rowOffset of [batch, totalRows, width], with std * N(0, 1)
// samples keyed by (key, index in the whole), so every rank and backend fills its shard of the same whole.
Napi::Value Randn(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 3, "nn.randn(engine, out, {key, std, width, rows, rowOffset, totalRows})");
    TensorPtr out = float_tensor(info[1], "out");
    Napi::Object o = c.opts(2);
    const int64_t key = require_int(o, "key");
    require(key >= 0 && key <= 0xffffffffLL, ErrorCode::InvalidArgument, "randn: key must be a 32-bit unsigned integer");
    const int64_t n = out->numel();
    const int64_t width = get_int(o, "width", out->shape().empty() ? 1 : out->shape().back());
    const int64_t rows = get_int(o, "rows", width > 0 ? n / width : 0);
    rng::ShardLayout layout{rows, get_int(o, "rowOffset", 0), get_int(o, "totalRows", rows), width};
    require(width > 0 && rows > 0 && n % (rows * width) == 0, ErrorCode::ShapeMismatch,
            "randn: out (" + out->describe() + ") must hold whole samples of rows x width = " + std::to_string(rows) +
                " x " + std::to_string(width));
    require(layout.row_offset >= 0 && layout.row_offset + rows <= layout.total_rows, ErrorCode::InvalidArgument,
            "randn: rows [rowOffset, rowOffset + rows) must lie inside totalRows");
    const float std = static_cast<float>(get_number(o, "std", 1.0));
    return c.run<bool>([out, n, key, layout, std](NnOps& ops) {
      return ops.randn(n, static_cast<uint32_t>(key), layout, std, out->data(), out->dtype()), true;
    }, Done);
  });
}

}  // namespace
}  // namespace nn

void InitNn(Napi::Env env, Napi::Object exports) {
  using namespace nn;
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  o.Set("rmsnorm", Napi::Function::New(env, RmsNorm, "rmsnorm"));
  o.Set("rmsnormBackward", Napi::Function::New(env, RmsNormBackward, "rmsnormBackward"));
  o.Set("gatedResidual", Napi::Function::New(env, GatedResidual, "gatedResidual"));
  o.Set("gatedResidualBackward", Napi::Function::New(env, GatedResidualBackward, "gatedResidualBackward"));
  o.Set("squaredError", Napi::Function::New(env, SquaredError, "squaredError"));
  o.Set("cast", Napi::Function::New(env, Cast, "cast"));
  o.Set("randn", Napi::Function::New(env, Randn, "randn"));
  InitTrainOps(env, o);
  exports.Set("nn", o);
}

}  // namespace xattn::binding
