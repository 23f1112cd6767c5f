#include "core/attn.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace xattn {

float AttnDims::softmax_scale() const {
  return scale > 0.f ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

void AttnDims::validate() const {
  auto bad = [](const std::string& m) { fail(ErrorCode::InvalidArgument, m); };
  if (batch < 1) bad("batch must be >= 1, got " + std::to_string(batch));
  if (heads < 1) bad("heads must be >= 1, got " + std::to_string(heads));
  if (kv_heads < 1) bad("kvHeads must be >= 1, got " + std::to_string(kv_heads));
  if (heads % kv_heads != 0)
    bad("heads (" + std::to_string(heads) + ") must be divisible by kvHeads (" + std::to_string(kv_heads) + ")");
  if (head_dim < 1 || head_dim > 256) bad("headDim must be in 1..256, got " + std::to_string(head_dim));
  if (!(scale >= 0.f) || std::isinf(scale)) bad("scale must be a finite number >= 0");
}

}  // namespace xattn
