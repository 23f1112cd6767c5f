#include "core/tcp_handshake.h"

#include <cstring>

#include "core/error.h"
#include "core/hmac_sha256.h"

namespace xattn {
namespace {

constexpr char kMagic[4] = {'X', 'T', 'H', '1'};
constexpr size_t kHeaderBytes = 12;  // magic, type, 3 pad bytes, u32 payload length
constexpr uint32_t kMaxPayload = 1024;
constexpr size_t kNonceBytes = 32;
constexpr const char* kAuthFailed = "authentication failed: peer does not hold this job's token";

enum class Type : uint8_t { Hello = 1, Challenge = 2, Proof = 3, Accept = 4, Refuse = 5 };
enum RefuseKind : uint8_t { kRefuseGeneral = 0, kRefuseAuth = 1 };

using Nonce = std::array<uint8_t, kNonceBytes>;

struct Frame {
  Type type{};
  std::string payload;
};

// Little-endian field packing, so mixed hosts agree on the wire format.
void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char(uint8_t(v >> (8 * i))));
}
uint32_t get_u32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(s[at + i])) << (8 * i);
  return v;
}

// rank, world, auth flag, nonce (+ optional MAC): the body of Hello and Challenge.
struct Identity {
  int rank = -1;
  int world = 0;
  bool auth = false;
  Nonce nonce{};
  Digest256 mac{};
};
constexpr size_t kIdentityBytes = 4 + 4 + 1 + kNonceBytes;

std::string encode_identity(const Identity& id, bool with_mac) {
  std::string s;
  put_u32(s, uint32_t(id.rank));
  put_u32(s, uint32_t(id.world));
  s.push_back(char(id.auth ? 1 : 0));
  s.append(reinterpret_cast<const char*>(id.nonce.data()), id.nonce.size());
  if (with_mac) s.append(reinterpret_cast<const char*>(id.mac.data()), id.mac.size());
  return s;
}

bool decode_identity(const std::string& p, bool with_mac, Identity* id) {
  if (p.size() != kIdentityBytes + (with_mac ? 32 : 0)) return false;
  id->rank = int(int32_t(get_u32(p, 0)));
  id->world = int(int32_t(get_u32(p, 4)));
  id->auth = p[8] != 0;
  std::memcpy(id->nonce.data(), p.data() + 9, kNonceBytes);
  if (with_mac) std::memcpy(id->mac.data(), p.data() + kIdentityBytes, 32);
  return true;
}

// The prover's MAC binds its role, both nonces and both ranks, so it cannot be replayed or reflected.
Digest256 proof(const std::string& token, const char* role, const Nonce& verifier_nonce, const Nonce& prover_nonce,
                int prover_rank, int verifier_rank, int world) {
  std::string msg = std::string("xattn-tcp|") + role + "|";
  msg.append(reinterpret_cast<const char*>(verifier_nonce.data()), kNonceBytes);
  msg.append(reinterpret_cast<const char*>(prover_nonce.data()), kNonceBytes);
  msg += "|" + std::to_string(prover_rank) + "|" + std::to_string(verifier_rank) + "|" + std::to_string(world);
  return hmac_sha256(token, msg);
}

class Channel {
 public:
  Channel(int fd, net::Deadline d, const std::atomic<bool>& cancel, std::string peer)
      : fd_(fd), deadline_(d), cancel_(cancel), peer_(std::move(peer)) {}

  // Returns false and sets *why when the peer misbehaves or the I/O fails.
  bool send(Type t, const std::string& payload, std::string* why) {
    std::string frame(kMagic, 4);
    frame.push_back(char(t));
    frame.append(3, '\0');
    put_u32(frame, uint32_t(payload.size()));
    frame += payload;
    return io(net::write_all(fd_, frame.data(), frame.size(), deadline_, cancel_, &err_), "sending to", why);
  }

  bool recv(Frame* f, std::string* why) {
    std::string hdr(kHeaderBytes, '\0');
    if (!io(net::read_exact(fd_, hdr.data(), hdr.size(), deadline_, cancel_, &err_), "reading from", why)) return false;
    if (std::memcmp(hdr.data(), kMagic, 4) != 0) {
      *why = peer_ + " is not an xattn transport peer (unexpected handshake bytes)";
      return false;
    }
    uint32_t len = get_u32(hdr, 8);
    if (len > kMaxPayload) {
      *why = peer_ + " sent an oversized handshake message (" + std::to_string(len) + " bytes)";
      return false;
    }
    f->type = Type(uint8_t(hdr[4]));
    f->payload.assign(len, '\0');
    return io(net::read_exact(fd_, f->payload.data(), len, deadline_, cancel_, &err_), "reading from", why);
  }

  void refuse(RefuseKind kind, const std::string& reason) {
    std::string ignored;
    send(Type::Refuse, std::string(1, char(kind)) + reason, &ignored);  // best effort: the peer may be gone
  }

  ErrorCode last_io_code() const { return last_code_; }

 private:
  bool io(net::IoStatus st, const char* verb, std::string* why) {
    switch (st) {
      case net::IoStatus::Ok: return true;
      case net::IoStatus::Timeout: last_code_ = ErrorCode::Timeout; *why = "timed out " + std::string(verb) + " " + peer_ + " during the handshake"; break;
      case net::IoStatus::Closed: last_code_ = ErrorCode::PeerLost; *why = peer_ + " closed the connection during the handshake"; break;
      case net::IoStatus::Cancelled: last_code_ = ErrorCode::Transport; *why = "the transport was closed during connect"; break;
      default: last_code_ = ErrorCode::Transport; *why = "error " + std::string(verb) + " " + peer_ + ": " + err_; break;
    }
    return false;
  }

  int fd_;
  net::Deadline deadline_;
  const std::atomic<bool>& cancel_;
  std::string peer_;
  std::string err_;
  ErrorCode last_code_ = ErrorCode::Transport;
};

[[noreturn]] void throw_refusal(const Frame& f, const std::string& who, int my_rank) {
  bool auth = !f.payload.empty() && uint8_t(f.payload[0]) == kRefuseAuth;
  std::string reason = f.payload.empty() ? "no reason given" : f.payload.substr(1);
  if (auth)
    fail(ErrorCode::Auth, "authentication failed: " + who + " refused rank " + std::to_string(my_rank) +
                              " (" + reason + "); do both ranks hold the same job token?");
  fail(ErrorCode::Transport, who + " refused rank " + std::to_string(my_rank) + ": " + reason);
}

}  // namespace

void handshake_as_connector(int fd, const HandshakeConfig& cfg, int expected_rank, const std::string& where,
                            net::Deadline deadline, const std::atomic<bool>& cancel) {
  std::string who = "rank " + std::to_string(expected_rank) + " at " + where;
  Channel ch(fd, deadline, cancel, who);
  std::string why;
  auto io_fail = [&]() { fail(ch.last_io_code(), "rank " + std::to_string(cfg.rank) + ": " + why); };
  bool auth = !cfg.token.empty();

  Identity me{cfg.rank, cfg.world_size, auth, {}, {}};
  net::random_bytes(me.nonce.data(), kNonceBytes);
  if (!ch.send(Type::Hello, encode_identity(me, false), &why)) io_fail();

  Frame f;
  if (!ch.recv(&f, &why)) io_fail();
  if (f.type == Type::Refuse) throw_refusal(f, who, cfg.rank);
  Identity peer;
  if (f.type != Type::Challenge || !decode_identity(f.payload, true, &peer))
    fail(ErrorCode::Transport, who + " answered with a malformed handshake");
  auto refuse_and_fail = [&](RefuseKind kind, ErrorCode code, const std::string& msg) {
    ch.refuse(kind, msg);
    fail(code, "rank " + std::to_string(cfg.rank) + ": " + msg + " (" + who + ")");
  };
  if (peer.world != cfg.world_size)
    refuse_and_fail(kRefuseGeneral, ErrorCode::Transport,
                    "world size mismatch: peer has " + std::to_string(peer.world) + ", this job has " +
                        std::to_string(cfg.world_size));
  if (peer.rank != expected_rank)
    refuse_and_fail(kRefuseGeneral, ErrorCode::Transport,
                    "expected rank " + std::to_string(expected_rank) + " but the peer is rank " +
                        std::to_string(peer.rank) + " (stale address?)");
  if (auth != peer.auth)
    refuse_and_fail(kRefuseAuth, ErrorCode::Auth,
                    auth ? kAuthFailed : "authentication mismatch: peer requires a job token but this rank has none");
  if (auth) {
    Digest256 want = proof(cfg.token, "acceptor", me.nonce, peer.nonce, peer.rank, cfg.rank, cfg.world_size);
    if (!constant_time_equal(want.data(), peer.mac.data(), want.size()))
      refuse_and_fail(kRefuseAuth, ErrorCode::Auth, kAuthFailed);
  }

  Digest256 mine{};
  if (auth) mine = proof(cfg.token, "connector", peer.nonce, me.nonce, cfg.rank, peer.rank, cfg.world_size);
  if (!ch.send(Type::Proof, std::string(reinterpret_cast<const char*>(mine.data()), mine.size()), &why)) io_fail();
  if (!ch.recv(&f, &why)) io_fail();
  if (f.type == Type::Refuse) throw_refusal(f, who, cfg.rank);
  if (f.type != Type::Accept) fail(ErrorCode::Transport, who + " answered with a malformed handshake");
}

AcceptOutcome handshake_as_acceptor(int fd, const HandshakeConfig& cfg, const std::vector<bool>& connected,
                                    net::Deadline deadline, const std::atomic<bool>& cancel) {
  Channel ch(fd, deadline, cancel, "an incoming connection");
  AcceptOutcome out;
  auto refuse = [&](RefuseKind kind, const std::string& reason) {
    ch.refuse(kind, reason);
    out.refusal = reason;
    out.auth_failure = kind == kRefuseAuth;
    return out;
  };
  auto broken = [&](const std::string& why) {
    if (cancel.load()) fail(ErrorCode::Transport, "the transport was closed during connect");
    out.refusal = why;
    return out;
  };
  bool auth = !cfg.token.empty();
  std::string why;
  Frame f;
  if (!ch.recv(&f, &why)) return broken(why);
  Identity peer;
  if (f.type != Type::Hello || !decode_identity(f.payload, false, &peer))
    return refuse(kRefuseGeneral, "malformed handshake");
  // Ranks and world size are not secret, so checking them before the token reveals nothing.
  if (peer.world != cfg.world_size)
    return refuse(kRefuseGeneral, "world size mismatch: peer has " + std::to_string(peer.world) +
                                      ", this job has " + std::to_string(cfg.world_size));
  if (peer.rank <= cfg.rank || peer.rank >= cfg.world_size)
    return refuse(kRefuseGeneral, "rank " + std::to_string(peer.rank) + " may not connect to rank " +
                                      std::to_string(cfg.rank) + " (only ranks " + std::to_string(cfg.rank + 1) +
                                      ".." + std::to_string(cfg.world_size - 1) + " dial it)");
  if (connected[peer.rank]) return refuse(kRefuseGeneral, "rank " + std::to_string(peer.rank) + " is already connected");
  if (auth != peer.auth)
    return refuse(kRefuseAuth, auth ? kAuthFailed : "authentication mismatch: peer uses a job token but this rank has none");

  Identity me{cfg.rank, cfg.world_size, auth, {}, {}};
  net::random_bytes(me.nonce.data(), kNonceBytes);
  if (auth) me.mac = proof(cfg.token, "acceptor", peer.nonce, me.nonce, cfg.rank, peer.rank, cfg.world_size);
  if (!ch.send(Type::Challenge, encode_identity(me, true), &why)) return broken(why);

  if (!ch.recv(&f, &why)) return broken(why);
  if (f.type == Type::Refuse) {
    out.auth_failure = !f.payload.empty() && uint8_t(f.payload[0]) == kRefuseAuth;
    out.refusal = "rank " + std::to_string(peer.rank) + " refused this rank: " +
                  (f.payload.empty() ? std::string("no reason given") : f.payload.substr(1));
    return out;
  }
  if (f.type != Type::Proof || f.payload.size() != 32) return refuse(kRefuseGeneral, "malformed handshake");
  if (auth) {
    Digest256 want = proof(cfg.token, "connector", me.nonce, peer.nonce, peer.rank, cfg.rank, cfg.world_size);
    if (!constant_time_equal(want.data(), reinterpret_cast<const uint8_t*>(f.payload.data()), want.size()))
      return refuse(kRefuseAuth, kAuthFailed);
  }
  if (!ch.send(Type::Accept, "", &why)) return broken(why);
  out.peer_rank = peer.rank;
  return out;
}

}  // namespace xattn
