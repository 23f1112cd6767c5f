#include "core/error.h"

namespace xattn {

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::ShapeMismatch: return "SHAPE_MISMATCH";
    case ErrorCode::Transport: return "TRANSPORT";
    case ErrorCode::PeerLost: return "PEER_LOST";
    case ErrorCode::Timeout: return "TIMEOUT";
    case ErrorCode::Auth: return "AUTH";
    case ErrorCode::Cuda: return "CUDA";
    case ErrorCode::Nccl: return "NCCL";
    default: return "INTERNAL";
  }
}

}  // namespace xattn
