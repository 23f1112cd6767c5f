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
                                  InstanceMethod("attentionMs", &Engine::AttentionMs),
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

// attentionMs(): the device ms of the attention calls made with `timed` since the last reading (Backend spans).
Napi::Value Engine::AttentionMs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return run_on_worker<double>(
        info.Env(), open_worker(), [this] { return backend_->spans_ms(); },
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
