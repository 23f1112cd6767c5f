#include "core/tcp_progress.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace xattn {
namespace {

constexpr uint32_t kFrameMagic = 0x58415431;  // "XAT1"
constexpr int kPollSliceMs = 100;             // bounds how late a timeout or stop is noticed
constexpr size_t kMaxChunk = size_t(1) << 26;  // per send()/recv() call

void put_le(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

TcpProgress::TcpProgress(int rank, int world_size, std::vector<net::Fd> peers, int timeout_ms)
    : rank_(rank),
      world_size_(world_size),
      timeout_ms_(timeout_ms),
      peers_(std::move(peers)),
      channels_(world_size),
      next_send_seq_(world_size, 0),
      next_recv_seq_(world_size, 0) {
  int fds[2];
  if (pipe(fds) != 0) fail(ErrorCode::Transport, "could not create the progress thread's wake pipe");
  wake_read_ = net::Fd(fds[0]);
  wake_write_ = net::Fd(fds[1]);
  for (int fd : fds) {
    net::set_nonblocking(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);  // child processes must not inherit it
  }
  thread_ = std::thread([this] { run(); });
}

TcpProgress::~TcpProgress() { stop(); }

void TcpProgress::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    poison_locked(ErrorCode::Transport, "the transport was closed");
  }
  wake();
  if (thread_.joinable()) thread_.join();
  for (auto& fd : peers_) fd.reset();
}

Transport::Handle TcpProgress::post(const std::vector<Exchange>& batch) {
  std::unique_lock<std::mutex> lock(mu_);
  if (failed_) throw_error_locked();
  for (const Exchange& ex : batch) {
    require(ex.to >= -1 && ex.to < world_size_, ErrorCode::InvalidArgument,
            "exchange target rank " + std::to_string(ex.to) + " is outside 0.." + std::to_string(world_size_ - 1));
    require(ex.from >= -1 && ex.from < world_size_, ErrorCode::InvalidArgument,
            "exchange source rank " + std::to_string(ex.from) + " is outside 0.." + std::to_string(world_size_ - 1));
    require(ex.to < 0 || ex.send || ex.send_bytes == 0, ErrorCode::InvalidArgument, "exchange send buffer is null");
    require(ex.from < 0 || ex.recv || ex.recv_bytes == 0, ErrorCode::InvalidArgument, "exchange receive buffer is null");
  }
  Transport::Handle h = next_handle_++;
  size_t count = 0;
  auto enqueue = [&](bool is_send, int peer, uint8_t* data, size_t bytes) {
    Op op;
    op.batch = h;
    op.peer = peer;
    op.is_send = is_send;
    op.data = data;
    op.bytes = bytes;
    ++count;
    if (peer == rank_) return (is_send ? self_sends_ : self_recvs_).push_back(op);
    op.seq = is_send ? next_send_seq_[peer]++ : next_recv_seq_[peer]++;
    if (is_send) {
      put_le(op.header, kFrameMagic, 4);
      put_le(op.header + 4, op.seq, 4);
      put_le(op.header + 8, bytes, 8);
    }
    incoming_.push_back(op);
  };
  for (const Exchange& ex : batch) {
    if (ex.to >= 0) enqueue(true, ex.to, static_cast<uint8_t*>(const_cast<void*>(ex.send)), ex.send_bytes);
    if (ex.from >= 0) enqueue(false, ex.from, static_cast<uint8_t*>(ex.recv), ex.recv_bytes);
  }
  remaining_[h] = count;
  match_self_locked();
  lock.unlock();
  wake();
  return h;
}

void TcpProgress::wait(Transport::Handle h) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = remaining_.find(h);
  if (it == remaining_.end()) {
    if (failed_) throw_error_locked();
    fail(ErrorCode::InvalidArgument, "wait: unknown transport handle " + std::to_string(h) + " (already waited?)");
  }
  // The progress thread enforces the timeout, so this wait always ends. After a failure we also wait
  // for the thread to stop, so it no longer touches buffers the caller may free once we throw.
  cv_.wait(lock, [&] { return failed_ ? thread_done_ : remaining_[h] == 0; });
  remaining_.erase(h);
  if (failed_) throw_error_locked();
}

void TcpProgress::match_self_locked() {
  while (!failed_ && !self_sends_.empty() && !self_recvs_.empty()) {
    Op s = self_sends_.front(), r = self_recvs_.front();
    self_sends_.pop_front();
    self_recvs_.pop_front();
    if (s.bytes != r.bytes) {
      return poison_locked(ErrorCode::Transport, "rank " + std::to_string(rank_) + " sent " + std::to_string(s.bytes) +
                                                     " bytes to itself but expected to receive " +
                                                     std::to_string(r.bytes));
    }
    if (s.bytes) std::memmove(r.data, s.data, s.bytes);
    for (const Op* op : {&s, &r})
      if (--remaining_[op->batch] == 0) cv_.notify_all();
  }
}

void TcpProgress::poison_locked(ErrorCode code, const std::string& msg) {
  if (failed_) return;  // the first error is the cause; later ones are consequences
  failed_ = true;
  error_code_ = code;
  error_msg_ = msg;
  cv_.notify_all();
}

void TcpProgress::throw_error_locked() const { throw XattnError(error_code_, error_msg_); }

void TcpProgress::wake() {
  char b = 1;
  ssize_t ignored = write(wake_write_.get(), &b, 1);  // a full pipe already means "wake up"
  (void)ignored;
}

std::string TcpProgress::secs() const {
  std::ostringstream s;
  s << timeout_ms_ / 1000.0 << " s";
  return s.str();
}

void TcpProgress::complete(const Op& op) {
  std::lock_guard<std::mutex> lock(mu_);
  if (--remaining_[op.batch] == 0) cv_.notify_all();
}

void TcpProgress::adopt_incoming() {
  auto now = net::Clock::now();
  for (Op& op : incoming_) {
    Channel& ch = channels_[op.peer];
    auto& queue = op.is_send ? ch.sends : ch.recvs;
    if (queue.empty()) (op.is_send ? ch.send_since : ch.recv_since) = now;
    queue.push_back(op);
  }
  incoming_.clear();
}

void TcpProgress::run() {
  std::vector<pollfd> fds;
  std::vector<int> fd_peer;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed_) {
        thread_done_ = true;
        cv_.notify_all();
        return;
      }
      adopt_incoming();
    }
    fds.assign(1, pollfd{wake_read_.get(), POLLIN, 0});
    fd_peer.assign(1, -1);
    for (int p = 0; p < world_size_; ++p) {
      short ev = (channels_[p].sends.empty() ? 0 : POLLOUT) | (channels_[p].recvs.empty() ? 0 : POLLIN);
      if (ev == 0) continue;  // idle peers are not polled: nothing to report until an op needs them
      fds.push_back(pollfd{peers_[p].get(), ev, 0});
      fd_peer.push_back(p);
    }
    int rc = ::poll(fds.data(), fds.size(), kPollSliceMs);
    try {
      if (rc < 0 && errno != EINTR) fail(ErrorCode::Transport, "poll failed: " + net::errno_text(errno));
      if (rc > 0 && (fds[0].revents & POLLIN)) {
        char buf[64];
        while (read(wake_read_.get(), buf, sizeof buf) > 0) {
        }
      }
      for (size_t i = 1; rc > 0 && i < fds.size(); ++i) {
        short re = fds[i].revents;
        if (re & POLLNVAL) fail(ErrorCode::Internal, "socket to rank " + std::to_string(fd_peer[i]) + " is invalid");
        if (re & (POLLOUT | POLLERR | POLLHUP)) pump(fd_peer[i], true);
        if (re & (POLLIN | POLLERR | POLLHUP)) pump(fd_peer[i], false);
      }
      check_timeouts();
    } catch (const XattnError& e) {
      std::lock_guard<std::mutex> lock(mu_);
      poison_locked(e.code(), e.what());
    } catch (const std::exception& e) {  // e.g. bad_alloc: fail the transport, not the process
      std::lock_guard<std::mutex> lock(mu_);
      poison_locked(ErrorCode::Internal, std::string("transport progress thread: ") + e.what());
    }
  }
}

void TcpProgress::pump(int peer, bool sending) {
  Channel& ch = channels_[peer];
  auto& queue = sending ? ch.sends : ch.recvs;
  auto& since = sending ? ch.send_since : ch.recv_since;
  int fd = peers_[peer].get();
  while (!queue.empty()) {
    Op& op = queue.front();
    bool in_header = op.header_done < kHeaderBytes;
    size_t left = in_header ? kHeaderBytes - op.header_done : op.bytes - op.body_done;
    if (left > 0) {
      uint8_t* p = in_header ? op.header + op.header_done : op.data + op.body_done;
      size_t len = left < kMaxChunk ? left : kMaxChunk;
      ssize_t n = sending ? net::send_some(fd, p, len) : net::recv_some(fd, p, len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if ((n == 0 && !sending) || (n < 0 && net::is_peer_gone_errno(errno)))
        fail(ErrorCode::PeerLost, "rank " + std::to_string(peer) + " closed the connection (it probably died) while rank " +
                                      std::to_string(rank_) + (sending ? " was sending to it" : " was waiting for data from it"));
      if (n < 0)
        fail(ErrorCode::Transport, std::string(sending ? "sending to" : "receiving from") + " rank " + std::to_string(peer) +
                                       " failed: " + net::errno_text(errno));
      (in_header ? op.header_done : op.body_done) += size_t(n);
      if (sending && !in_header) bytes_sent_ += uint64_t(n);
      since = net::Clock::now();
      if (!sending && in_header && op.header_done == kHeaderBytes) check_header(op);
      if (op.header_done < kHeaderBytes || op.body_done < op.bytes) continue;
    }
    complete(op);
    queue.pop_front();
    since = net::Clock::now();
  }
}

void TcpProgress::check_header(const Op& op) const {
  std::string peer = "rank " + std::to_string(op.peer), me = "rank " + std::to_string(rank_);
  if (get_le(op.header, 4) != kFrameMagic)
    fail(ErrorCode::Transport, "corrupt stream from " + peer + " (bad message header): the connection is out of sync");
  uint64_t seq = get_le(op.header + 4, 4), len = get_le(op.header + 8, 8);
  if (seq != op.seq)
    fail(ErrorCode::Transport, me + " expected message #" + std::to_string(op.seq) + " from " + peer + " but got #" +
                                   std::to_string(seq) + ": the connection is out of sync");
  if (len != op.bytes)
    fail(ErrorCode::Transport, me + " expected " + std::to_string(op.bytes) + " bytes from " + peer + " but " + peer +
                                   " sent " + std::to_string(len) + " (message #" + std::to_string(seq) +
                                   "): the ranks disagree on the schedule or tensor shapes");
}

void TcpProgress::check_timeouts() {
  auto now = net::Clock::now();
  auto limit = std::chrono::milliseconds(timeout_ms_);
  for (int p = 0; p < world_size_; ++p) {
    const Channel& ch = channels_[p];
    std::string me = "rank " + std::to_string(rank_), peer = "rank " + std::to_string(p);
    if (!ch.recvs.empty() && now - ch.recv_since > limit)
      fail(ErrorCode::Timeout, me + " waited " + secs() + " for data from " + peer + " (message #" +
                                   std::to_string(ch.recvs.front().seq) + ", " + std::to_string(ch.recvs.front().bytes) +
                                   " bytes) without progress: " + peer + " may be stuck or slower than the timeout");
    if (!ch.sends.empty() && now - ch.send_since > limit)
      fail(ErrorCode::Timeout, me + " waited " + secs() + " to send " + std::to_string(ch.sends.front().bytes) +
                                   " bytes to " + peer + " without progress: " + peer +
                                   " is not receiving (stuck or slower than the timeout)");
  }
}

}  // namespace xattn
