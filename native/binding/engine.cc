#include "binding/engine.h"

#include <string>
#include <vector>

#include "binding/areas.h"
#include "binding/async.h"
#include "binding/common.h"
#include "binding/tensor.h"
#include "binding/transport.h"
#include "core/cpu_backend.h"
#include "core/link_probe.h"
#include "core/local_transport.h"
#include "core/shard.h"
#ifdef XATTN_WITH_CUDA
#include "cuda/cuda_factory.h"
#endif

namespace xattn::binding {

namespace {

Napi::FunctionReference* engine_ctor = nullptr;

Napi::Value resolved(Napi::Env env) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(env.Undefined());
  return d.Promise();
}

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
  p.lq = shard_of(p.problem.lq_total, tr.world_size(), tr.rank()).length;
  p.lkv = shard_of(p.problem.lkv_total, tr.world_size(), tr.rank()).length;
  return p;
}

Napi::Object stats_into(Napi::Env env, Napi::Object out, const DistStats& s) {
  out.Set("bytesSent", Napi::Number::New(env, static_cast<double>(s.bytes_sent)));
  out.Set("commWaitSeconds", Napi::Number::New(env, s.comm_wait_seconds));
  out.Set("rowChunks", Napi::Number::New(env, s.row_chunks));
  out.Set("partials", s.partials == PartialPrecision::Float16 ? "float16" : "float32");
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

Napi::Function Engine::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Engine",
                                 {InstanceMethod("info", &Engine::Info),
                                  InstanceMethod("useTcp", &Engine::UseTcp),
                                  InstanceMethod("ncclUniqueId", &Engine::NcclUniqueId),
                                  InstanceMethod("useNccl", &Engine::UseNccl),
                                  InstanceMethod("upload", &Engine::Upload),
                                  InstanceMethod("empty", &Engine::Empty),
                                  InstanceMethod("attentionForward", &Engine::AttentionForward),
                                  InstanceMethod("attentionBackward", &Engine::AttentionBackward),
                                  InstanceMethod("allReduce", &Engine::AllReduce),
                                  InstanceMethod("measureLink", &Engine::MeasureLink),
                                  InstanceMethod("synchronize", &Engine::Synchronize),
                                  InstanceMethod("stopwatchMark", &Engine::StopwatchMark),
                                  InstanceMethod("stopwatchMs", &Engine::StopwatchMs),
                                  InstanceMethod("close", &Engine::Close)});
  engine_ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Engine* Engine::Unwrap(const Napi::Value& v) {
  if (!v.IsObject() || !engine_ctor || !v.As<Napi::Object>().InstanceOf(engine_ctor->Value()))
    fail(ErrorCode::InvalidArgument, "expected an Engine");
  Engine* e = Napi::ObjectWrap<Engine>::Unwrap(v.As<Napi::Object>());
  require(e->worker_ != nullptr && !e->closing_, ErrorCode::InvalidArgument, "the engine is closed");
  return e;
}

Engine::Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
  guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object opts = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    backend_name_ = get_string(opts, "backend", "cpu");
    device_ = static_cast<int>(get_int(opts, "device", 0));
    worker_ = std::make_unique<WorkerThread>();
    worker_->run_sync([&] {  // the backend lives on the worker thread (CUDA's current device is per thread)
      if (backend_name_ == "cpu") {
        backend_ = std::make_shared<CpuBackend>();
#ifdef XATTN_WITH_CUDA
      } else if (backend_name_ == "cuda") {
        backend_ = std::shared_ptr<Backend>(make_cuda_backend(device_));
#endif
      } else {
        fail(ErrorCode::InvalidArgument, "backend '" + backend_name_ + "' is not available in this build (cpu" +
#ifdef XATTN_WITH_CUDA
                                             std::string(", cuda") +
#endif
                                             ")");
      }
    });
    transport_ = std::make_shared<LocalTransport>();
    releaser_->attach(worker_.get());
    return info.Env().Undefined();
  });
}

Engine::~Engine() {
  releaser_->detach();
  schedules_.clear();
  worker_.reset();
}

Napi::Value Engine::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("backend", backend_ ? backend_->name() : "closed");
  o.Set("transport", transport_ ? transport_->name() : "none");
  o.Set("transportPath", transport_ ? transport_->describe() : "none");
  o.Set("rank", transport_ ? transport_->rank() : 0);
  o.Set("worldSize", transport_ ? transport_->world_size() : 1);
  o.Set("device", device_);
  uint64_t used = 0, peak = 0, total = 0;
  double link_gbps = 0, flops = 0;
  const bool reset_peak = info.Length() > 0 && info[0].IsObject() &&
                          info[0].As<Napi::Object>().Get("resetPeak").ToBoolean().Value();
  if (worker_ && backend_) worker_->run_sync([&] {
    used = backend_->memory_used();
    total = backend_->memory_total();
    peak = backend_->memory_peak(reset_peak);
    link_gbps = link_gbps_ > 0 ? link_gbps_ : 0;
    flops = backend_->attention_flops_per_second();
  });
  o.Set("memoryUsed", Napi::Number::New(env, static_cast<double>(used)));
  o.Set("memoryPeak", Napi::Number::New(env, static_cast<double>(peak)));
  o.Set("memoryTotal", Napi::Number::New(env, static_cast<double>(total)));
  o.Set("linkGbps", Napi::Number::New(env, link_gbps));
  o.Set("attentionFlopsPerSecond", Napi::Number::New(env, flops));
  return o;
}

Napi::Value Engine::UseTcp(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    std::shared_ptr<Transport> t = unwrap_transport(info[0]);
    worker_->run_sync([&] {
      schedules_.clear();
      link_gbps_ = -1;  // a new transport: probe its link again
      transport_ = t;
    });
    return info.Env().Undefined();
  });
}

Napi::Value Engine::NcclUniqueId(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
#ifdef XATTN_WITH_CUDA
    std::vector<uint8_t> id = nccl_unique_id();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), id.data(), id.size());
#else
    fail(ErrorCode::InvalidArgument, "NCCL needs the CUDA build of the addon");
#endif
  });
}

Napi::Value Engine::UseNccl(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
#ifdef XATTN_WITH_CUDA
    Napi::Object o = info[0].As<Napi::Object>();
    auto buf = o.Get("id").As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> id(buf.Data(), buf.Data() + buf.Length());
    const int rank = static_cast<int>(require_int(o, "rank")), world = static_cast<int>(require_int(o, "worldSize"));
    const int timeout = static_cast<int>(get_int(o, "timeoutMs", 120000));
    return run_on_worker<bool>(
        info.Env(), open_worker(),
        [this, id, rank, world, timeout] {
          schedules_.clear();
          link_gbps_ = -1;  // a new transport: probe its link again
          transport_ = std::shared_ptr<Transport>(make_nccl_transport(id, rank, world, *backend_, timeout));
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
#else
    fail(ErrorCode::InvalidArgument, "NCCL needs the CUDA build of the addon");
#endif
  });
}

WorkerThread& Engine::open_worker() {
  require(worker_ != nullptr && !closing_, ErrorCode::InvalidArgument, "the engine is closed");
  return *worker_;
}

DistAttention& Engine::schedule_for(const DistProblem& p) {
  std::string key = problem_key(p);
  auto it = schedules_.find(key);
  if (it == schedules_.end()) {
    DistProblem with_link = p;
    if (p.comm && transport_->world_size() > 1) {
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
    const AttnDims& d = plan.problem.dims;
    TensorPtr q = Tensor::Unwrap(o.Get("q"), "q"), k = Tensor::Unwrap(o.Get("k"), "k"), v = Tensor::Unwrap(o.Get("v"), "v");
    TensorPtr mask = optional_tensor(o, "mask");
    expect(q, "q", {d.batch, plan.lq, d.heads, d.head_dim}, d.dtype);
    expect(k, "k", {d.batch, plan.lkv, d.kv_heads, d.head_dim}, d.dtype);
    expect(v, "v", {d.batch, plan.lkv, d.kv_heads, d.head_dim}, d.dtype);
    if (mask) expect(mask, "mask", {d.batch, plan.lq, 2}, d.dtype, DeviceTensor::Kind::Int32);
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
          s.forward(plan.algo, {q->data(), k->data(), v->data(), mask ? mask->as<int32_t>() : nullptr, r.o->data(),
                                r.lse->as<float>(), plan.keep_query ? q->id() : 0});
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
    TensorPtr q = Tensor::Unwrap(o.Get("q"), "q"), k = Tensor::Unwrap(o.Get("k"), "k"), v = Tensor::Unwrap(o.Get("v"), "v");
    TensorPtr out = Tensor::Unwrap(o.Get("o"), "o"), lse = Tensor::Unwrap(o.Get("lse"), "lse");
    TensorPtr dout = Tensor::Unwrap(o.Get("dout"), "dout");
    TensorPtr mask = optional_tensor(o, "mask");
    const std::vector<int64_t> qs{d.batch, plan.lq, d.heads, d.head_dim}, kvs{d.batch, plan.lkv, d.kv_heads, d.head_dim};
    expect(q, "q", qs, d.dtype);
    expect(k, "k", kvs, d.dtype);
    expect(v, "v", kvs, d.dtype);
    expect(out, "o", qs, d.dtype);
    expect(dout, "dout", qs, d.dtype);
    expect(lse, "lse", {d.batch, d.heads, plan.lq}, DType::F32);
    if (mask) expect(mask, "mask", {d.batch, plan.lq, 2}, d.dtype, DeviceTensor::Kind::Int32);
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
          s.backward(plan.algo, {q->data(), k->data(), v->data(), out->data(), lse->as<float>(), dout->data(),
                                 mask ? mask->as<int32_t>() : nullptr, r.dq->as<float>(), r.dk->as<float>(), r.dv->as<float>(),
                                 q->id()});
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

Napi::Value Engine::AllReduce(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    TensorPtr t = Tensor::Unwrap(info[0], "tensor");
    require(t->dtype() == DType::F32 && t->kind() == DeviceTensor::Kind::Float, ErrorCode::InvalidArgument,
            "allReduce takes a float32 tensor, got " + t->describe());
    return run_on_worker<bool>(
        info.Env(), open_worker(),
        [this, t] {
          backend_->synchronize();
          transport_->all_reduce_sum_f32(t->as<float>(), static_cast<size_t>(t->numel()));
          backend_->synchronize();
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// synchronize(): resolves once all work queued so far has finished on the device (timing, profiles).
Napi::Value Engine::Synchronize(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return run_on_worker<bool>(
        info.Env(), open_worker(), [this] { return backend_->synchronize(), true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// stopwatchMark() / stopwatchMs(): ms on the device between the last two marks (Backend::stopwatch_mark),
// queued in order with the ops around them; for benchmarks that time the device as CUDA events do.
Napi::Value Engine::StopwatchMark(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return run_on_worker<bool>(
        info.Env(), open_worker(), [this] { return backend_->stopwatch_mark(), true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value Engine::StopwatchMs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return run_on_worker<double>(
        info.Env(), open_worker(), [this] { return backend_->stopwatch_ms(); },
        [](Napi::Env env, double& ms) -> Napi::Value { return Napi::Number::New(env, ms); });
  });
}

// measureLink(bytes, iters): times ring exchanges (send to rank+1, receive from rank-1) of `bytes`
// over the job's transport; resolves to seconds per exchange. For the benchmarks' link bandwidth.
Napi::Value Engine::MeasureLink(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const int64_t bytes = info[0].As<Napi::Number>().Int64Value();
    const int iters = info[1].As<Napi::Number>().Int32Value();
    require(bytes > 0 && iters > 0, ErrorCode::InvalidArgument, "measureLink(bytes > 0, iters > 0)");
    return run_on_worker<double>(
        info.Env(), open_worker(),
        [this, bytes, iters] { return time_ring_exchange(*backend_, *transport_, size_t(bytes), iters).mean; },
        [](Napi::Env env, double& s) -> Napi::Value { return Napi::Number::New(env, s); });
  });
}

// close(): tears down schedules, model ops and the transport on the worker (NCCL's teardown is an
// intra-node collective and must not block the event loop), then stops the worker. Resolves when done.
Napi::Value Engine::Close(const Napi::CallbackInfo& info) {
  if (!worker_) return resolved(info.Env());
  WorkerThread& worker = open_worker();
  closing_ = true;
  return run_on_worker<bool>(
      info.Env(), worker,
      [this] {
        schedules_.clear();
        nn_ops_.reset();
        transport_.reset();
        backend_->synchronize();
        return true;
      },
      [this](Napi::Env env, bool&) -> Napi::Value {
        releaser_->detach();
        worker_.reset();  // the queue is empty but for tensor releases; join is quick
        return env.Undefined();
      });
}

void InitEngine(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", Engine::Define(env));
  exports.Set("Tensor", Tensor::Define(env));
}

}  // namespace xattn::binding
