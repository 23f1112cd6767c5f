#include "core/socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "core/error.h"

#ifndef SOCK_CLOEXEC
#define SOCK_CLOEXEC 0
#endif

namespace xattn::net {
namespace {

// Poll slices stay short so cancellation (close() during connect) is noticed quickly.
constexpr int kPollSliceMs = 100;

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on each socket instead
#endif

void no_sigpipe(int fd) {
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
  (void)fd;
#endif
}

// Waits for `events` on fd; returns >0 ready, 0 timeout/cancel, <0 error.
int poll_one(int fd, short events, Deadline d, const std::atomic<bool>& cancel) {
  for (;;) {
    if (cancel.load()) return 0;
    int left = ms_until(d);
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, left < kPollSliceMs ? left : kPollSliceMs);
    if (rc > 0) return rc;
    if (rc < 0 && errno != EINTR) return -1;
    if (rc == 0 && left <= kPollSliceMs) return 0;
  }
}

std::string describe_sockaddr(const sockaddr* sa) {
  char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  return sa->sa_family == AF_INET6 ? "[" + std::string(host) + "]:" + serv : std::string(host) + ":" + serv;
}

struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head) freeaddrinfo(head);
  }
};

int resolve(const std::string& host, int port, bool passive, AddrInfoList* out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  return getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &out->head);
}

}  // namespace

Deadline deadline_after_ms(int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms); }

int ms_until(Deadline d) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

int Fd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string HostPort::str() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

HostPort parse_host_port(const std::string& s) {
  auto bad = [&](const char* why) { fail(ErrorCode::InvalidArgument, "bad peer address '" + s + "': " + why); };
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) bad("expected host:port");
  std::string host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']') bad("unclosed '[' in an IPv6 address");
    host = host.substr(1, host.size() - 2);
  }
  std::string port_text = s.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
    bad("the port must be a number");
  int port = std::stoi(port_text);
  if (port < 1 || port > 65535) bad("the port must be in 1..65535");
  return HostPort{host, port};
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    fail(ErrorCode::Transport, "could not make a socket non-blocking: " + errno_text(errno));
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // best effort: latency only
}

Fd listen_tcp(const std::string& host, int port) {
  AddrInfoList ai;
  int rc = resolve(host, port, true, &ai);
  if (rc != 0) fail(ErrorCode::Transport, "cannot resolve bind address '" + host + "': " + gai_strerror(rc));
  std::string last = "no address";
  for (addrinfo* a = ai.head; a; a = a->ai_next) {
    Fd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last = errno_text(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || listen(fd.get(), SOMAXCONN) != 0) {
      last = errno_text(errno);
      continue;
    }
    set_nonblocking(fd.get());
    return fd;
  }
  fail(ErrorCode::Transport, "cannot listen on " + HostPort{host, port}.str() + ": " + last);
}

int local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Fd accept_until(int listen_fd, Deadline d, const std::atomic<bool>& cancel, std::string* peer_desc) {
  for (;;) {
    int rc = poll_one(listen_fd, POLLIN, d, cancel);
    if (rc <= 0) return Fd();
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = accept(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) continue;
      fail(ErrorCode::Transport, "accept failed: " + errno_text(errno));
    }
    Fd conn(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    set_nonblocking(fd);
    set_nodelay(fd);
    no_sigpipe(fd);
    if (peer_desc) *peer_desc = describe_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    return conn;
  }
}

Fd try_connect(const HostPort& hp, Deadline d, const std::atomic<bool>& cancel, std::string* err) {
  AddrInfoList ai;
  int rc = resolve(hp.host, hp.port, false, &ai);
  if (rc != 0) {
    *err = std::string("cannot resolve '") + hp.host + "': " + gai_strerror(rc);
    return Fd();
  }
  for (addrinfo* a = ai.head; a; a = a->ai_next) {
    Fd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      *err = errno_text(errno);
      continue;
    }
    set_nonblocking(fd.get());
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        *err = errno_text(errno);
        continue;
      }
      if (poll_one(fd.get(), POLLOUT, d, cancel) <= 0) {
        *err = "connection attempt timed out";
        continue;
      }
      int so_error = 0;
      socklen_t len = sizeof so_error;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error != 0) {
        *err = errno_text(so_error);
        continue;
      }
    }
    set_nodelay(fd.get());
    no_sigpipe(fd.get());
    return fd;
  }
  return Fd();
}

namespace {

// Moves exactly n bytes in one direction, polling between partial transfers until the deadline.
IoStatus transfer_exact(int fd, uint8_t* p, size_t n, bool sending, Deadline d, const std::atomic<bool>& cancel,
                        std::string* err) {
  while (n > 0) {
    ssize_t moved = sending ? send_some(fd, p, n) : recv_some(fd, p, n);
    if (moved > 0) {
      p += moved;
      n -= static_cast<size_t>(moved);
      continue;
    }
    if (moved == 0) return IoStatus::Closed;  // recv: orderly shutdown by the peer
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno_text(errno);
      return is_peer_gone_errno(errno) ? IoStatus::Closed : IoStatus::Error;
    }
    int rc = poll_one(fd, sending ? POLLOUT : POLLIN, d, cancel);
    if (rc == 0) return cancel.load() ? IoStatus::Cancelled : IoStatus::Timeout;
    if (rc < 0) {
      *err = errno_text(errno);
      return IoStatus::Error;
    }
  }
  return IoStatus::Ok;
}

}  // namespace

IoStatus read_exact(int fd, void* buf, size_t n, Deadline d, const std::atomic<bool>& cancel, std::string* err) {
  return transfer_exact(fd, static_cast<uint8_t*>(buf), n, false, d, cancel, err);
}

IoStatus write_all(int fd, const void* buf, size_t n, Deadline d, const std::atomic<bool>& cancel, std::string* err) {
  // send() never writes through the pointer; the cast only lets both directions share one loop.
  return transfer_exact(fd, static_cast<uint8_t*>(const_cast<void*>(buf)), n, true, d, cancel, err);
}

ssize_t send_some(int fd, const void* buf, size_t n) { return ::send(fd, buf, n, kSendFlags); }

ssize_t recv_some(int fd, void* buf, size_t n) { return ::recv(fd, buf, n, 0); }

bool is_peer_gone_errno(int e) { return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ECONNABORTED; }

void random_bytes(void* out, size_t n) {
  // The kernel's generator: nonces must be unpredictable, not merely unique.
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    size_t take = n < 256 ? n : 256;  // getentropy's per-call limit
    if (getentropy(p, take) != 0) fail(ErrorCode::Internal, "getentropy failed: " + errno_text(errno));
    p += take;
    n -= take;
  }
}

std::string errno_text(int e) { return std::strerror(e); }

}  // namespace xattn::net
