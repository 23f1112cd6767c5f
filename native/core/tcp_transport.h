// Transport over TCP between processes (the CPU backend's transport, and the fallback without NCCL).
// Two phases: the constructor listens on an ephemeral port, which the rendezvous publishes; connect()
// then builds a full mesh (each rank dials the lower ranks and accepts the higher ones) with an
// authenticated handshake. Transfers run on a background progress thread (see tcp_progress.h).
// Thread-safe: connect, post/wait and close may be called from any thread.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/socket_io.h"
#include "core/tcp_handshake.h"
#include "core/tcp_progress.h"
#include "core/transport.h"

namespace xattn {

struct TcpTransportOptions {
  int rank = 0;
  int world_size = 1;
  std::string host = "0.0.0.0";  // bind address
  std::string token;             // job token; empty disables authentication
  int timeout_ms = 300000;       // connect deadline and per-operation no-progress limit
};

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(TcpTransportOptions opts);
  ~TcpTransport() override;

  int port() const { return port_; }
  // addresses[r] = "host:port" of rank r (this rank's own entry is ignored). Blocks until the mesh is up.
  void connect(const std::vector<std::string>& addresses);
  // Fails pending and later calls, stops the progress thread, closes sockets. Idempotent.
  void close();
  bool connected() const;

  int rank() const override { return opts_.rank; }
  int world_size() const override { return opts_.world_size; }
  const char* name() const override { return "tcp"; }
  Handle post(const std::vector<Exchange>& batch) override;
  void wait(Handle h) override;
  void all_reduce_sum_f32(float* data, size_t n) override;
  void barrier() override;
  uint64_t bytes_sent() const override;

 private:
  TcpProgress& progress() const;
  std::vector<net::Fd> build_mesh(const std::vector<std::string>& addresses);
  net::Fd dial(int peer, const std::string& address, net::Deadline deadline);
  void accept_higher_ranks(std::vector<net::Fd>& peers, net::Deadline deadline);
  std::string secs() const;

  const TcpTransportOptions opts_;
  const HandshakeConfig handshake_;
  net::Fd listener_;
  int port_ = 0;
  std::atomic<bool> closing_{false};

  mutable std::mutex mu_;
  bool connect_started_ = false;
  std::shared_ptr<TcpProgress> progress_;  // set once connect() succeeds
};

}  // namespace xattn
