#include "core/nn_ops.h"

#include <cstring>
#include <string>

#include "core/cpu_nn_ops.h"
#include "core/error.h"

namespace xattn {

std::unique_ptr<NnOps> make_nn_ops(Backend& backend) {
  if (std::strcmp(backend.name(), "cpu") == 0) return std::make_unique<CpuNnOps>();
  fail(ErrorCode::InvalidArgument,
       std::string("model ops (GEMM, norms, optimizer) are not available on the ") + backend.name() +
           " backend in this build");
}

}  // namespace xattn
