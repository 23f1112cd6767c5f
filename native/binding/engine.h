// The engine: one backend (CPU or CUDA) with its worker thread, a transport, and the distributed
// attention schedules. Other binding files reach the backend through Engine::Unwrap.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <string>

#include "core/backend.h"
#include "binding/releaser.h"
#include "core/device_tensor.h"
#include "core/nn_ops.h"
#include "core/schedule.h"
#include "core/transport.h"
#include "core/worker_thread.h"

namespace xattn::binding {

class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Engine* Unwrap(const Napi::Value& v);  // throws a coded error for anything but an open Engine
  using Napi::ObjectWrap<Engine>::Unwrap;
  explicit Engine(const Napi::CallbackInfo& info);
  ~Engine() override;

  std::shared_ptr<Backend> backend() const { return backend_; }
  WorkerThread& worker() { return *worker_; }
  const std::shared_ptr<Releaser>& releaser() const { return releaser_; }
  Transport& transport() { return *transport_; }
  NnOps& nn_ops();  // model ops for this backend, created on first use; call on the worker (defined in nn_args.cc)

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value UseTcp(const Napi::CallbackInfo& info);
  Napi::Value NcclUniqueId(const Napi::CallbackInfo& info);
  Napi::Value UseNccl(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Empty(const Napi::CallbackInfo& info);
  Napi::Value AttentionForward(const Napi::CallbackInfo& info);
  Napi::Value AttentionBackward(const Napi::CallbackInfo& info);
  Napi::Value AllReduce(const Napi::CallbackInfo& info);
  Napi::Value MeasureLink(const Napi::CallbackInfo& info);
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  Napi::Value StopwatchMark(const Napi::CallbackInfo& info);
  Napi::Value StopwatchMs(const Napi::CallbackInfo& info);
  Napi::Value AttentionMs(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  DistAttention& schedule_for(const DistProblem& p);
  WorkerThread& open_worker();  // throws once the engine is closed

  std::unique_ptr<WorkerThread> worker_;
  std::shared_ptr<Backend> backend_;
  std::shared_ptr<Transport> transport_;
  std::map<std::string, std::unique_ptr<DistAttention>> schedules_;  // touched only on the worker
  double link_gbps_ = -1;  // the ranks' ring-exchange bandwidth, probed at the first distributed call
  std::unique_ptr<NnOps> nn_ops_;                                    // touched only on the worker
  bool closing_ = false;
  std::shared_ptr<Releaser> releaser_ = std::make_shared<Releaser>();
  std::string backend_name_;
  int device_ = 0;
};

}  // namespace xattn::binding
