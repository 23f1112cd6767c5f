// One exception type with a stable code, so the binding can surface codes to JavaScript.
#pragma once
#include <stdexcept>
#include <string>

namespace xattn {

// Stable codes (mirrored in runtime/errors.ts as XATTN_E_<code>).
enum class ErrorCode { InvalidArgument, ShapeMismatch, Transport, PeerLost, Timeout, Auth, Cuda, Nccl, Internal };
const char* error_code_name(ErrorCode c);

class XattnError : public std::runtime_error {
 public:
  XattnError(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode c, const std::string& msg) { throw XattnError(c, msg); }
inline void require(bool ok, ErrorCode c, const std::string& msg) {
  if (!ok) fail(c, msg);
}

}  // namespace xattn
