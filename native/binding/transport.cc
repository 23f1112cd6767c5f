// JS surface of the TCP transport: `new TcpTransport({rank, worldSize, host?, token?, timeoutMs?})`,
// with connect/exchange/allReduce/barrier returning promises (work runs on libuv's thread pool, never
// on the event loop), plus sha256/hmacSha256 so tests can check the core's hash against node:crypto.
#include "binding/transport.h"

#include <functional>
#include <string>
#include <vector>

#include "binding/areas.h"
#include "binding/common.h"
#include "core/hmac_sha256.h"
#include "core/tcp_transport.h"

namespace xattn::binding {
namespace {

// Marks objects created by TcpTransport's constructor, so unwrap_transport can trust its argument.
constexpr napi_type_tag kTcpTransportTag = {0x7861747463707472ULL, 0x616e73706f727431ULL};

struct Bytes {
  uint8_t* data = nullptr;
  size_t size = 0;
};

Bytes typed_array_bytes(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) fail(ErrorCode::InvalidArgument, std::string(what) + " must be a TypedArray or Buffer");
  auto ta = v.As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

// Runs `work` off the event loop and settles a promise; keeps the JS values it touches alive meanwhile.
class TransportTask : public Napi::AsyncWorker {
 public:
  using Result = std::function<Napi::Value(Napi::Env)>;
  TransportTask(Napi::Env env, std::function<void()> work, Result result, std::function<void()> done)
      : Napi::AsyncWorker(env, "xattn:TcpTransport"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)),
        done_(std::move(done)) {}

  void keep_alive(Napi::Value v) { refs_.push_back(Napi::Persistent(v)); }
  Napi::Promise start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const XattnError& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = ErrorCode::Internal;
      SetError(e.what());
    }
  }
  void OnOK() override {
    done_();
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    done_();
    deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  Result result_;
  std::function<void()> done_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
  ErrorCode code_ = ErrorCode::Internal;
};

class JsTcpTransport : public Napi::ObjectWrap<JsTcpTransport> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpTransport",
                       {InstanceAccessor<&JsTcpTransport::Port>("port"),
                        InstanceAccessor<&JsTcpTransport::Rank>("rank"),
                        InstanceAccessor<&JsTcpTransport::WorldSize>("worldSize"),
                        InstanceAccessor<&JsTcpTransport::BytesSent>("bytesSent"),
                        InstanceMethod<&JsTcpTransport::Connect>("connect"),
                        InstanceMethod<&JsTcpTransport::ExchangeBytes>("exchange"),
                        InstanceMethod<&JsTcpTransport::AllReduce>("allReduce"),
                        InstanceMethod<&JsTcpTransport::Barrier>("barrier"),
                        InstanceMethod<&JsTcpTransport::Close>("close")});
  }

  explicit JsTcpTransport(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsTcpTransport>(info) {
    guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) fail(ErrorCode::InvalidArgument, "TcpTransport needs an options object {rank, worldSize}");
      auto o = info[0].As<Napi::Object>();
      TcpTransportOptions opts;
      opts.rank = static_cast<int>(require_int(o, "rank"));
      opts.world_size = static_cast<int>(require_int(o, "worldSize"));
      opts.host = get_string(o, "host", opts.host);
      opts.token = get_string(o, "token", "");
      opts.timeout_ms = static_cast<int>(get_int(o, "timeoutMs", opts.timeout_ms));
      core_ = std::make_shared<TcpTransport>(opts);
      info.This().As<Napi::Object>().TypeTag(&kTcpTransportTag);
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<TcpTransport> core() const { return core_; }

 private:
  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->port()); }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->rank()); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->world_size()); }
  Napi::Value BytesSent(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(core_->bytes_sent()));
  }

  // Operations are ordered streams shared with the peers, so one at a time: a second concurrent call
  // would interleave messages in an order the other ranks cannot know.
  TransportTask* start_task(const Napi::CallbackInfo& info, std::function<void()> work, TransportTask::Result result) {
    if (busy_)
      fail(ErrorCode::InvalidArgument,
           "TcpTransport: another operation is still running; await it before starting the next "
           "(every rank must issue operations in the same order)");
    busy_ = true;
    auto* task = new TransportTask(info.Env(), std::move(work), std::move(result), [this] { busy_ = false; });
    task->keep_alive(info.This());
    return task;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsArray()) fail(ErrorCode::InvalidArgument, "connect needs an array of 'host:port' strings");
      auto arr = info[0].As<Napi::Array>();
      std::vector<std::string> addresses;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value v = arr.Get(i);
        if (!v.IsString()) fail(ErrorCode::InvalidArgument, "connect: address " + std::to_string(i) + " is not a string");
        addresses.push_back(v.As<Napi::String>().Utf8Value());
      }
      auto core = core_;
      return start_task(info, [core, addresses] { core->connect(addresses); }, nullptr)->start();
    });
  }

  Napi::Value ExchangeBytes(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) fail(ErrorCode::InvalidArgument, "exchange needs {send?, to?, recvBytes?, from?}");
      auto o = info[0].As<Napi::Object>();
      Exchange ex;
      Napi::Value send = o.Get("send");
      bool has_send = !send.IsUndefined() && !send.IsNull();
      if (has_send) {
        Bytes b = typed_array_bytes(send, "exchange: send");
        ex.send = b.data;
        ex.send_bytes = b.size;
        ex.to = static_cast<int>(require_int(o, "to"));
        if (ex.to < 0) fail(ErrorCode::InvalidArgument, "exchange: 'to' must be a rank");
      }
      int64_t recv_bytes = get_int(o, "recvBytes", -1);
      // The receive buffer is allocated here, on the JS thread, and filled by the transport.
      std::shared_ptr<Napi::Reference<Napi::Value>> recv_ref;
      if (recv_bytes >= 0) {
        ex.from = static_cast<int>(require_int(o, "from"));
        if (ex.from < 0) fail(ErrorCode::InvalidArgument, "exchange: 'from' must be a rank");
        auto arr = Napi::Uint8Array::New(info.Env(), static_cast<size_t>(recv_bytes));
        ex.recv = arr.Data();
        ex.recv_bytes = static_cast<size_t>(recv_bytes);
        recv_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Napi::Value(arr)));
      }
      auto core = core_;
      TransportTask* task = start_task(
          info, [core, ex] { core->wait(core->post({ex})); },
          [recv_ref](Napi::Env env) { return recv_ref ? recv_ref->Value() : env.Undefined(); });
      if (has_send) task->keep_alive(send);
      return task->start();
    });
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        fail(ErrorCode::InvalidArgument, "allReduce needs a Float32Array (summed in place)");
      Bytes b = typed_array_bytes(info[0], "allReduce");
      auto core = core_;
      auto* data = reinterpret_cast<float*>(b.data);
      size_t n = b.size / sizeof(float);
      TransportTask* task = start_task(info, [core, data, n] { core->all_reduce_sum_f32(data, n); }, nullptr);
      task->keep_alive(info[0]);
      return task->start();
    });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto core = core_;
      return start_task(info, [core] { core->barrier(); }, nullptr)->start();
    });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_->close();
    return info.Env().Undefined();
  }

  std::shared_ptr<TcpTransport> core_;
  bool busy_ = false;  // touched only on the JS thread
};

Napi::Value Sha256(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Bytes b = typed_array_bytes(info[0], "sha256: data");
    Digest256 d = sha256(b.data, b.size);
    auto out = Napi::Uint8Array::New(info.Env(), d.size());
    std::copy(d.begin(), d.end(), out.Data());
    return out;
  });
}

Napi::Value HmacSha256(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Bytes key = typed_array_bytes(info[0], "hmacSha256: key");
    Bytes msg = typed_array_bytes(info[1], "hmacSha256: message");
    Digest256 d = hmac_sha256(key.data, key.size, msg.data, msg.size);
    auto out = Napi::Uint8Array::New(info.Env(), d.size());
    std::copy(d.begin(), d.end(), out.Data());
    return out;
  });
}

}  // namespace

std::shared_ptr<xattn::Transport> unwrap_transport(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kTcpTransportTag))
    throw make_error(v.Env(), ErrorCode::InvalidArgument, "expected a TcpTransport object");
  return JsTcpTransport::Unwrap(v.As<Napi::Object>())->core();
}

void InitTransport(Napi::Env env, Napi::Object exports) {
  exports.Set("TcpTransport", JsTcpTransport::Define(env));
  exports.Set("sha256", Napi::Function::New(env, Sha256, "sha256"));
  exports.Set("hmacSha256", Napi::Function::New(env, HmacSha256, "hmacSha256"));
}

}  // namespace xattn::binding
