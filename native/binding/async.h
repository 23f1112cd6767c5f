// Runs work on an engine's worker thread and settles a JavaScript Promise on the JS thread.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "core/error.h"
#include "binding/common.h"
#include "core/worker_thread.h"

namespace xattn::binding {

// work() runs on the worker and fills a result; finish(env) builds the resolved value on the JS thread.
// An exception from work() rejects the Promise with a coded Error.
template <typename Result>
Napi::Promise run_on_worker(Napi::Env env, WorkerThread& worker, std::function<Result()> work,
                            std::function<Napi::Value(Napi::Env, Result&)> finish) {
  struct State {
    Napi::Promise::Deferred deferred;
    Napi::ThreadSafeFunction tsfn;
    std::function<Result()> work;
    std::function<Napi::Value(Napi::Env, Result&)> finish;
    Result result{};
    bool failed = false;
    ErrorCode code = ErrorCode::Internal;
    std::string message;
  };
  auto* st = new State{Napi::Promise::Deferred::New(env), {}, std::move(work), std::move(finish)};
  st->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                           "xattn-engine", 0, 1);
  Napi::Promise promise = st->deferred.Promise();
  worker.submit([st] {
    try {
      st->result = st->work();
    } catch (const XattnError& e) {
      st->failed = true, st->code = e.code(), st->message = e.what();
    } catch (const std::exception& e) {
      st->failed = true, st->message = e.what();
    }
    Napi::ThreadSafeFunction tsfn = st->tsfn;  // st is freed by the JS-thread callback
    tsfn.BlockingCall([st](Napi::Env env, Napi::Function) {
      std::unique_ptr<State> owned(st);
      if (owned->failed) {
        owned->deferred.Reject(make_error(env, owned->code, owned->message).Value());
        return;
      }
      try {
        owned->deferred.Resolve(owned->finish(env, owned->result));
      } catch (const Napi::Error& e) {
        owned->deferred.Reject(e.Value());
      }
    });
    tsfn.Release();
  });
  return promise;
}

}  // namespace xattn::binding
