// Thin POSIX socket helpers for the TCP transport: RAII descriptors, address parsing, listening,
// connecting and deadline-bounded reads/writes for handshakes. Every socket here is non-blocking.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

namespace xattn::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

Deadline deadline_after_ms(int64_t ms);
int ms_until(Deadline d);  // clamped to [0, INT_MAX]

// Owns one file descriptor and closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

struct HostPort {
  std::string host;
  int port = 0;
  std::string str() const;
};

// Parses "host:port" or "[v6addr]:port"; throws InvalidArgument naming the bad address.
HostPort parse_host_port(const std::string& s);

// Listens on host:port (port 0 = ephemeral) and returns the non-blocking socket.
Fd listen_tcp(const std::string& host, int port);
int local_port(int fd);

// Waits for one incoming connection until the deadline (or cancel); returns an invalid Fd if none.
Fd accept_until(int listen_fd, Deadline d, const std::atomic<bool>& cancel, std::string* peer_desc);

// One connection attempt (resolving the host each time, so late DNS records are picked up).
// Returns an invalid Fd and sets *err when it fails; the caller decides whether to retry.
Fd try_connect(const HostPort& hp, Deadline d, const std::atomic<bool>& cancel, std::string* err);

void set_nonblocking(int fd);
void set_nodelay(int fd);

enum class IoStatus { Ok, Timeout, Closed, Error, Cancelled };
// Deadline-bounded blocking-style I/O over a non-blocking socket (used only for handshakes).
IoStatus read_exact(int fd, void* buf, size_t n, Deadline d, const std::atomic<bool>& cancel, std::string* err);
IoStatus write_all(int fd, const void* buf, size_t n, Deadline d, const std::atomic<bool>& cancel, std::string* err);

// One non-blocking send/recv that never raises SIGPIPE; return value and errno as for send/recv.
ssize_t send_some(int fd, const void* buf, size_t n);
ssize_t recv_some(int fd, void* buf, size_t n);

// Errors a dead or vanished peer produces (as opposed to a local bug).
bool is_peer_gone_errno(int e);

void random_bytes(void* out, size_t n);
std::string errno_text(int e);

}  // namespace xattn::net
