// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), used to authenticate transport handshakes
// without sending the job token. Small and dependency-free so the core needs no crypto library.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace xattn {

using Digest256 = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  Digest256 finish();  // the object must not be updated afterwards

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t block_[64];
  size_t block_len_ = 0;
  uint64_t total_bytes_ = 0;
};

Digest256 sha256(const void* data, size_t n);
Digest256 hmac_sha256(const void* key, size_t key_len, const void* msg, size_t msg_len);
inline Digest256 hmac_sha256(const std::string& key, const std::string& msg) {
  return hmac_sha256(key.data(), key.size(), msg.data(), msg.size());
}

// Compares without an early exit, so the time taken does not reveal where the first difference is.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t n);

}  // namespace xattn
