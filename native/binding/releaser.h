// Hands device memory back on the engine's worker thread. Tensors keep a shared Releaser rather than
// a pointer to their Engine, so a tensor finalized after its engine (at exit, in any order) is safe.
#pragma once
#include <mutex>

#include "core/device_tensor.h"
#include "core/worker_thread.h"

namespace xattn::binding {

class Releaser {
 public:
  void attach(WorkerThread* w) {
    std::lock_guard<std::mutex> lock(mu_);
    worker_ = w;
  }
  void detach() { attach(nullptr); }
  WorkerThread* worker() {
    std::lock_guard<std::mutex> lock(mu_);
    return worker_;
  }
  // Frees on the worker when there is one (never blocking the event loop on the device), else here.
  void release(TensorPtr t) {
    std::lock_guard<std::mutex> lock(mu_);
    if (worker_ && t) worker_->submit([t]() mutable { t.reset(); });
  }

 private:
  std::mutex mu_;
  WorkerThread* worker_ = nullptr;
};

}  // namespace xattn::binding
