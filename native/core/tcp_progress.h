// The TCP transport's progress engine: one background thread drives every posted send and receive
// over non-blocking sockets with poll(), so compute overlaps communication and a send to rank r+1
// never waits for a receive from rank r-1 (full duplex). Each message carries a 16-byte header
// (magic, per-direction sequence number, length) that the receiver checks against what it expects.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/socket_io.h"
#include "core/transport.h"

namespace xattn {

class TcpProgress {
 public:
  // peers[r] is the connected socket to rank r (invalid at this rank's own index).
  TcpProgress(int rank, int world_size, std::vector<net::Fd> peers, int timeout_ms);
  ~TcpProgress();
  TcpProgress(const TcpProgress&) = delete;
  TcpProgress& operator=(const TcpProgress&) = delete;

  Transport::Handle post(const std::vector<Exchange>& batch);
  void wait(Transport::Handle h);
  uint64_t bytes_sent() const { return bytes_sent_.load(); }

  // Fails every pending and later call with "the transport was closed", stops the thread, closes sockets.
  void stop();

 private:
  static constexpr size_t kHeaderBytes = 16;
  struct Op {
    Transport::Handle batch = 0;
    int peer = -1;
    bool is_send = false;
    uint8_t* data = nullptr;
    size_t bytes = 0;
    uint32_t seq = 0;
    uint8_t header[kHeaderBytes] = {};
    size_t header_done = 0;
    size_t body_done = 0;
  };
  // Per-peer queues, owned by the progress thread; each direction completes in FIFO order.
  struct Channel {
    std::deque<Op> sends, recvs;
    net::Clock::time_point send_since, recv_since;  // last progress of the op at the head
  };

  void run();
  void adopt_incoming();
  void pump(int peer, bool sending);  // moves bytes for the ops at the head of one direction
  void check_timeouts();
  void check_header(const Op& op) const;
  void complete(const Op& op);
  void match_self_locked();
  void poison_locked(ErrorCode code, const std::string& msg);
  [[noreturn]] void throw_error_locked() const;
  void wake();
  std::string secs() const;

  const int rank_;
  const int world_size_;
  const int timeout_ms_;
  std::vector<net::Fd> peers_;
  std::vector<Channel> channels_;
  net::Fd wake_read_, wake_write_;
  std::atomic<uint64_t> bytes_sent_{0};

  // Shared between callers and the progress thread, guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Op> incoming_;
  std::deque<Op> self_sends_, self_recvs_;
  std::unordered_map<Transport::Handle, size_t> remaining_;  // batch -> ops not yet complete
  std::vector<uint32_t> next_send_seq_, next_recv_seq_;
  Transport::Handle next_handle_ = 1;
  bool failed_ = false;
  ErrorCode error_code_ = ErrorCode::Internal;
  std::string error_msg_;
  bool thread_done_ = false;

  std::thread thread_;
};

}  // namespace xattn
