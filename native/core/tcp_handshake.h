// The TCP transport's connection handshake: both sides identify their rank and world size and, when a
// job token is set, prove they hold it with HMAC-SHA256 challenge-response in both directions. The
// token itself never crosses the wire.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "core/socket_io.h"

namespace xattn {

struct HandshakeConfig {
  int rank = 0;
  int world_size = 1;
  std::string token;  // empty: no authentication
};

// Runs on the side that dialed `expected_rank` at `where`. Throws XattnError: Auth when the token
// check fails in either direction, Transport for a refusal or a stranger, Timeout/PeerLost for I/O.
void handshake_as_connector(int fd, const HandshakeConfig& cfg, int expected_rank, const std::string& where,
                            net::Deadline deadline, const std::atomic<bool>& cancel);

// Outcome of one incoming connection: a peer rank, or the reason it was refused (strangers do not
// abort the job: a wrong guess at the port must not take a healthy rank down).
struct AcceptOutcome {
  int peer_rank = -1;
  std::string refusal;
  bool auth_failure = false;
};

// Runs on the side that accepted. `connected[r]` says which ranks already have a connection.
AcceptOutcome handshake_as_acceptor(int fd, const HandshakeConfig& cfg, const std::vector<bool>& connected,
                                    net::Deadline deadline, const std::atomic<bool>& cancel);

}  // namespace xattn
