// The engine's attention calls: attentionForward / attentionBackward read a call's plan and tensors, check
// their shapes, and run the call's schedule (one per problem, made on first use) on the engine's worker.
#include <string>
#include <vector>

#include "binding/async.h"
#include "binding/common.h"
#include "binding/engine.h"
#include "binding/tensor.h"
#include "core/link_probe.h"
#include "core/shard.h"

namespace xattn::binding {

namespace {

AttnDims read_dims(const Napi::Object& o) {
  AttnDims d;
  d.batch = get_int(o, "batch", 1);
  d.heads = require_int(o, "heads");
  d.kv_heads = get_int(o, "kvHeads", d.heads);
  d.head_dim = require_int(o, "headDim");
  d.scale = static_cast<float>(get_number(o, "scale", 0.0));
  d.dtype = parse_dtype(get_string(o, "dtype", "float32"));
  d.validate();
  return d;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Checks a tensor argument's shape and dtype, naming the argument in the error.
void expect(const TensorPtr& t, const char* name, const std::vector<int64_t>& shape, DType dtype,
            DeviceTensor::Kind kind = DeviceTensor::Kind::Float) {
  const bool dtype_ok = kind == DeviceTensor::Kind::Int32 ? t->kind() == kind : (t->kind() == kind && t->dtype() == dtype);
  if (t->shape() != shape || !dtype_ok) {
    const std::string want = kind == DeviceTensor::Kind::Int32 ? "int32" : dtype_name(dtype);
    fail(ErrorCode::ShapeMismatch, std::string(name) + " is " + t->describe() + ", expected " + want + shape_str(shape));
  }
}

TensorPtr optional_tensor(const Napi::Object& o, const char* key) {
  if (!o.Has(key) || o.Get(key).IsNull() || o.Get(key).IsUndefined()) return nullptr;
  return Tensor::Unwrap(o.Get(key), key);
}

struct CallPlan {
  Algorithm algo;
  DistProblem problem;
  int64_t lq = 0, lkv = 0;
  int64_t kept_forwards = -1;  // keptForwards: forwards whose Q blocks LV-XAttn keeps at least (-1: as it was)
  bool keep_query = true;      // keepQuery (forward): a backward of this Q follows, so keep its blocks
  bool timed = false;          // timed: the call's device time adds to attentionMs()
};

CallPlan read_plan(const Napi::Object& o, const Transport& tr) {
  CallPlan p;
  p.algo = parse_algorithm(get_string(o, "algorithm", "lv-xattn"));
  if (!o.Has("dims") || !o.Get("dims").IsObject()) fail(ErrorCode::InvalidArgument, "dims must be an object");
  p.problem.dims = read_dims(o.Get("dims").As<Napi::Object>());
  p.problem.lq_total = require_int(o, "lqTotal");
  p.problem.lkv_total = require_int(o, "lkvTotal");
  p.problem.comm = !o.Has("comm") || o.Get("comm").ToBoolean().Value();
  p.problem.partials = parse_partials(get_string(o, "partials", "auto"));
  require(p.problem.lq_total >= 1 && p.problem.lkv_total >= 1, ErrorCode::InvalidArgument,
          "lqTotal and lkvTotal must be >= 1");
  if (o.Has("keptForwards") && !o.Get("keptForwards").IsUndefined()) {
    p.kept_forwards = require_int(o, "keptForwards");
    require(p.kept_forwards >= 0 && p.kept_forwards <= 1024, ErrorCode::InvalidArgument,
            "keptForwards must be an integer in 0..1024, got " + std::to_string(p.kept_forwards));
  }
  p.keep_query = !o.Has("keepQuery") || o.Get("keepQuery").IsUndefined() || o.Get("keepQuery").ToBoolean().Value();
  p.timed = o.Has("timed") && o.Get("timed").ToBoolean().Value();
  p.lq = shard_of(p.problem.lq_total, tr.world_size(), tr.rank()).length;
  p.lkv = shard_of(p.problem.lkv_total, tr.world_size(), tr.rank()).length;
  return p;
}

// The inputs both passes take (q, k, v and the optional mask), unwrapped and checked against the plan's
// local shapes.
struct QkvInputs {
  TensorPtr q, k, v, mask;
  std::vector<int64_t> q_shape, kv_shape;
};

QkvInputs read_qkv(const Napi::Object& o, const CallPlan& plan) {
  const AttnDims& d = plan.problem.dims;
  QkvInputs in{Tensor::Unwrap(o.Get("q"), "q"), Tensor::Unwrap(o.Get("k"), "k"), Tensor::Unwrap(o.Get("v"), "v"),
               optional_tensor(o, "mask"), {d.batch, plan.lq, d.heads, d.head_dim}, {d.batch, plan.lkv, d.kv_heads, d.head_dim}};
  expect(in.q, "q", in.q_shape, d.dtype);
  expect(in.k, "k", in.kv_shape, d.dtype);
  expect(in.v, "v", in.kv_shape, d.dtype);
  if (in.mask) expect(in.mask, "mask", {d.batch, plan.lq, 2}, d.dtype, DeviceTensor::Kind::Int32);
  return in;
}

Napi::Object stats_into(Napi::Env env, Napi::Object out, const DistStats& s) {
  out.Set("bytesSent", Napi::Number::New(env, static_cast<double>(s.bytes_sent)));
  out.Set("commWaitSeconds", Napi::Number::New(env, s.comm_wait_seconds));
  out.Set("rowChunks", Napi::Number::New(env, s.row_chunks));
  out.Set("partials", s.partials == PartialPrecision::Float16 ? "float16" : "float32");
  out.Set("stackedRows", Napi::Boolean::New(env, s.stacked));
  out.Set("gatheredBlocks", Napi::Boolean::New(env, s.gathered));
  return out;
}

std::string problem_key(const DistProblem& p) {
  const AttnDims& d = p.dims;
  return std::to_string(d.batch) + "/" + std::to_string(d.heads) + "/" + std::to_string(d.kv_heads) + "/" +
         std::to_string(d.head_dim) + "/" + std::to_string(d.scale) + "/" + dtype_name(d.dtype) + "/" +
         std::to_string(p.lq_total) + "/" + std::to_string(p.lkv_total) + "/" + (p.comm ? "c" : "n") +
         (p.partials == PartialPrecision::Float16 ? "/p16" : p.partials == PartialPrecision::Auto ? "/pauto" : "");
}

}  // namespace

DistAttention& Engine::schedule_for(const DistProblem& p) {
  std::string key = problem_key(p);
  auto it = schedules_.find(key);
  if (it == schedules_.end()) {
    DistProblem with_link = p;
    // The no-communication bound plans as LV-XAttn would (it mirrors the stacked backward), so it knows the link too.
    if (transport_->world_size() > 1) {
      if (link_gbps_ < 0) link_gbps_ = probe_link_gbps(*backend_, *transport_);  // once, on every rank alike
      with_link.link_gbps = link_gbps_;
    }
    it = schedules_.emplace(key, std::make_unique<DistAttention>(*backend_, *transport_, with_link)).first;
  }
  return *it->second;
}

Napi::Value Engine::AttentionForward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() > 0 && info[0].IsObject(), ErrorCode::InvalidArgument, "attentionForward takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    CallPlan plan = read_plan(o, *transport_);
    const QkvInputs in = read_qkv(o, plan);
    const TensorPtr &q = in.q, &k = in.k, &v = in.v, &mask = in.mask;
    struct Out {
      DistStats stats;
      TensorPtr o, lse;
    };
    return run_on_worker<Out>(
        info.Env(), open_worker(),
        [this, plan, q, k, v, mask] {
          const AttnDims& d = plan.problem.dims;  // outputs are allocated here, on the device's thread
          Out r{{}, std::make_shared<DeviceTensor>(backend_, std::vector<int64_t>{d.batch, plan.lq, d.heads, d.head_dim}, d.dtype),
                std::make_shared<DeviceTensor>(backend_, std::vector<int64_t>{d.batch, d.heads, plan.lq}, DType::F32)};
          DistAttention& s = schedule_for(plan.problem);
          if (plan.kept_forwards >= 0) s.keep_forwards_at_least(static_cast<size_t>(plan.kept_forwards));
          // Resolves once queued, like every other op: the outputs are ordered on the compute stream, and
          // waiting here would leave the GPU idle while the host queues the next call.
          if (plan.timed) backend_->span_begin();
          s.forward(plan.algo, {q->data(), k->data(), v->data(), mask ? mask->as<int32_t>() : nullptr, r.o->data(),
                                r.lse->as<float>(), plan.keep_query ? q->id() : 0});
          if (plan.timed) backend_->span_end();
          r.stats = s.last_stats();
          return r;
        },
        [this](Napi::Env env, Out& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("o", Tensor::Wrap(env, this, r.o));
          o.Set("lse", Tensor::Wrap(env, this, r.lse));
          return stats_into(env, o, r.stats);
        });
  });
}

Napi::Value Engine::AttentionBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() > 0 && info[0].IsObject(), ErrorCode::InvalidArgument, "attentionBackward takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    CallPlan plan = read_plan(o, *transport_);
    const AttnDims& d = plan.problem.dims;
    const QkvInputs in = read_qkv(o, plan);
    const TensorPtr &q = in.q, &k = in.k, &v = in.v, &mask = in.mask;
    const std::vector<int64_t>& qs = in.q_shape, &kvs = in.kv_shape;
    TensorPtr out = Tensor::Unwrap(o.Get("o"), "o"), lse = Tensor::Unwrap(o.Get("lse"), "lse");
    TensorPtr dout = Tensor::Unwrap(o.Get("dout"), "dout");
    expect(out, "o", qs, d.dtype);
    expect(dout, "dout", qs, d.dtype);
    expect(lse, "lse", {d.batch, d.heads, plan.lq}, DType::F32);
    struct Out {
      DistStats stats;
      TensorPtr dq, dk, dv;
    };
    return run_on_worker<Out>(
        info.Env(), open_worker(),
        [this, plan, q, k, v, out, lse, dout, mask, qs, kvs] {
          Out r{{}, std::make_shared<DeviceTensor>(backend_, qs, DType::F32), std::make_shared<DeviceTensor>(backend_, kvs, DType::F32),
                std::make_shared<DeviceTensor>(backend_, kvs, DType::F32)};
          DistAttention& s = schedule_for(plan.problem);
          if (plan.timed) backend_->span_begin();
          s.backward(plan.algo, {q->data(), k->data(), v->data(), out->data(), lse->as<float>(), dout->data(),
                                 mask ? mask->as<int32_t>() : nullptr, r.dq->as<float>(), r.dk->as<float>(), r.dv->as<float>(),
                                 q->id()});
          if (plan.timed) backend_->span_end();
          r.stats = s.last_stats();
          return r;
        },
        [this](Napi::Env env, Out& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("dq", Tensor::Wrap(env, this, r.dq));
          o.Set("dk", Tensor::Wrap(env, this, r.dk));
          o.Set("dv", Tensor::Wrap(env, this, r.dv));
          return stats_into(env, o, r.stats);
        });
  });
}

}  // namespace xattn::binding
