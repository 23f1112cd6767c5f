#include "core/tcp_transport.h"

#include <algorithm>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/transport_collectives.h"

namespace xattn {
namespace {

// An honest peer answers a handshake in milliseconds; a silent stranger is cut off after this long.
constexpr int kHandshakeLimitMs = 5000;

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

}  // namespace

TcpTransport::TcpTransport(TcpTransportOptions opts)
    : opts_(std::move(opts)), handshake_{opts_.rank, opts_.world_size, opts_.token} {
  require(opts_.world_size >= 1, ErrorCode::InvalidArgument,
          "worldSize must be at least 1 (got " + std::to_string(opts_.world_size) + ")");
  require(opts_.rank >= 0 && opts_.rank < opts_.world_size, ErrorCode::InvalidArgument,
          "rank " + std::to_string(opts_.rank) + " is outside 0.." + std::to_string(opts_.world_size - 1));
  require(opts_.timeout_ms > 0, ErrorCode::InvalidArgument, "timeoutMs must be positive");
  listener_ = net::listen_tcp(opts_.host, 0);
  port_ = net::local_port(listener_.get());
}

TcpTransport::~TcpTransport() { close(); }

std::string TcpTransport::secs() const {
  std::ostringstream s;
  s << opts_.timeout_ms / 1000.0 << " s";
  return s.str();
}

void TcpTransport::connect(const std::vector<std::string>& addresses) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    require(!closing_.load(), ErrorCode::Transport, "connect: the transport is closed");
    require(!connect_started_, ErrorCode::InvalidArgument, "connect may be called only once per transport");
    connect_started_ = true;
  }
  require(int(addresses.size()) == opts_.world_size, ErrorCode::InvalidArgument,
          "connect needs one address per rank: got " + std::to_string(addresses.size()) + " for world size " +
              std::to_string(opts_.world_size));
  std::vector<net::Fd> peers = build_mesh(addresses);
  listener_.reset();  // the mesh is complete: later connection attempts are refused by the kernel
  std::lock_guard<std::mutex> lock(mu_);
  require(!closing_.load(), ErrorCode::Transport, "connect: the transport was closed while connecting");
  progress_ = std::make_shared<TcpProgress>(opts_.rank, opts_.world_size, std::move(peers), opts_.timeout_ms);
}

std::vector<net::Fd> TcpTransport::build_mesh(const std::vector<std::string>& addresses) {
  // Dial lower ranks first, then accept higher ones: rank 0 only accepts, so by induction every
  // dial finds its peer already in (or soon reaching) its accept loop, and nobody deadlocks.
  auto deadline = net::deadline_after_ms(opts_.timeout_ms);
  std::vector<net::Fd> peers(opts_.world_size);
  for (int p = 0; p < opts_.rank; ++p) peers[p] = dial(p, addresses[p], deadline);
  accept_higher_ranks(peers, deadline);
  return peers;
}

net::Fd TcpTransport::dial(int peer, const std::string& address, net::Deadline deadline) {
  net::HostPort hp = net::parse_host_port(address);
  std::string last_error = "no attempt made";
  int backoff_ms = 20;
  for (;;) {
    require(!closing_.load(), ErrorCode::Transport, "connect: the transport was closed while connecting");
    net::Fd fd = net::try_connect(hp, deadline, closing_, &last_error);
    if (fd.valid()) {
      handshake_as_connector(fd.get(), handshake_, peer, hp.str(), deadline, closing_);
      return fd;
    }
    // Refused or unresolvable: the peer may not be listening yet (or its DNS record not published).
    if (net::ms_until(deadline) == 0)
      fail(ErrorCode::Timeout, "rank " + std::to_string(opts_.rank) + " could not connect to rank " +
                                   std::to_string(peer) + " at " + hp.str() + " within " + secs() +
                                   " (last error: " + last_error + ")");
    int left = net::ms_until(deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms < left ? backoff_ms : left));
    backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
  }
}

void TcpTransport::accept_higher_ranks(std::vector<net::Fd>& peers, net::Deadline deadline) {
  std::vector<bool> connected(opts_.world_size, false);
  int missing = opts_.world_size - 1 - opts_.rank;
  std::vector<std::string> refusals;
  bool auth_refused = false;
  while (missing > 0) {
    std::string from;
    net::Fd fd = net::accept_until(listener_.get(), deadline, closing_, &from);
    require(!closing_.load(), ErrorCode::Transport, "connect: the transport was closed while connecting");
    if (!fd.valid()) break;  // deadline
    auto handshake_deadline = std::min(deadline, net::deadline_after_ms(kHandshakeLimitMs));
    AcceptOutcome out = handshake_as_acceptor(fd.get(), handshake_, connected, handshake_deadline, closing_);
    if (out.peer_rank < 0) {
      refusals.push_back(from + ": " + out.refusal);
      auth_refused = auth_refused || out.auth_failure;
      continue;
    }
    connected[out.peer_rank] = true;
    peers[out.peer_rank] = std::move(fd);
    --missing;
  }
  if (missing == 0) return;
  std::vector<int> absent;
  for (int p = opts_.rank + 1; p < opts_.world_size; ++p)
    if (!connected[p]) absent.push_back(p);
  std::string msg = "rank " + std::to_string(opts_.rank) + " waited " + secs() + " for rank" +
                    (absent.size() > 1 ? "s " : " ") + rank_list(absent) + " to connect";
  if (!refusals.empty()) {
    msg += "; refused " + std::to_string(refusals.size()) + " connection(s): ";
    for (size_t i = 0; i < refusals.size() && i < 4; ++i) msg += (i ? "; " : "") + refusals[i];
  }
  fail(auth_refused ? ErrorCode::Auth : ErrorCode::Timeout, msg);
}

void TcpTransport::close() {
  closing_.store(true);
  std::shared_ptr<TcpProgress> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = progress_;
  }
  if (p) p->stop();
}

bool TcpTransport::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_ != nullptr;
}

TcpProgress& TcpTransport::progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  require(progress_ != nullptr, ErrorCode::InvalidArgument,
          closing_.load() ? "the transport is closed" : "the transport is not connected yet: call connect() first");
  return *progress_;
}

Transport::Handle TcpTransport::post(const std::vector<Exchange>& batch) { return progress().post(batch); }

void TcpTransport::wait(Handle h) { progress().wait(h); }

void TcpTransport::all_reduce_sum_f32(float* data, size_t n) { ring_all_reduce_sum_f32(*this, data, n); }

void TcpTransport::barrier() { dissemination_barrier(*this); }

uint64_t TcpTransport::bytes_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_ ? progress_->bytes_sent() : 0;
}

}  // namespace xattn
