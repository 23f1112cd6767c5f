// Optimizer-side ops: sums of squares, in-place scale/fill/axpy, AdamW, and one all-reduce for every
// gradient plus a few host scalars.
#include <chrono>
#include <cmath>

#include "binding/nn_args.h"

namespace xattn::binding::nn {
namespace {

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

// allReducePost(engine, [tensors]) -> {posted, handle, bytesSent}: starts an in-place sum of the tensors
// across ranks in the background where the transport can (NCCL), so compute queued next overlaps it;
// posted is false where it cannot (TCP, one rank), and the caller sums them with allReduceSum instead.
Napi::Value AllReducePost(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 2, "nn.allReducePost(engine, tensors)");
    std::vector<TensorPtr> ts = f32_list(info[1], "allReducePost: tensors");
    Engine* e = c.engine;
    struct Posted {
      bool posted = false;
      double handle = 0, bytes = 0;
    };
    return run_on_worker<Posted>(
        c.env, e->worker(),
        [e, ts] {
          Posted p;
          Transport& tr = e->transport();
          if (tr.world_size() < 2 || !tr.can_post_all_reduce()) return p;
          std::vector<std::pair<float*, size_t>> bufs;
          for (const auto& t : ts) bufs.emplace_back(t->as<float>(), static_cast<size_t>(t->numel()));
          const uint64_t sent0 = tr.bytes_sent();
          p.handle = static_cast<double>(tr.post_all_reduce_sum_f32(bufs));
          p.bytes = static_cast<double>(tr.bytes_sent() - sent0);
          p.posted = true;
          return p;
        },
        [](Napi::Env env, Posted& p) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("posted", Napi::Boolean::New(env, p.posted));
          o.Set("handle", Napi::Number::New(env, p.handle));
          o.Set("bytesSent", Napi::Number::New(env, p.bytes));
          return o;
        });
  });
}

// allReduceWait(engine, handle): work queued after this sees the sums (on CUDA the compute stream waits
// for the transfer; the host does not).
Napi::Value AllReduceWait(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Call c(info, 2, "nn.allReduceWait(engine, handle)");
    require(info[1].IsNumber(), ErrorCode::InvalidArgument, "allReduceWait: handle must be a number");
    const auto h = static_cast<Transport::Handle>(info[1].As<Napi::Number>().Int64Value());
    Engine* e = c.engine;
    return run_on_worker<bool>(c.env, e->worker(), [e, h] { return e->transport().wait(h), true; }, Done);
  });
}

}  // namespace

void InitTrainOps(Napi::Env env, Napi::Object o) {
  o.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  o.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  o.Set("scale", Napi::Function::New(env, Scale, "scale"));
  o.Set("fill", Napi::Function::New(env, Fill, "fill"));
  o.Set("adamw", Napi::Function::New(env, AdamW, "adamw"));
  o.Set("allReduceSum", Napi::Function::New(env, AllReduceSum, "allReduceSum"));
  o.Set("allReducePost", Napi::Function::New(env, AllReducePost, "allReducePost"));
  o.Set("allReduceWait", Napi::Function::New(env, AllReduceWait, "allReduceWait"));
}

}  // namespace xattn::binding::nn
