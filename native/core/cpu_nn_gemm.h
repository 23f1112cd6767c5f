// Cache-blocked, multithreaded, deterministic GEMM on the CPU (fp32 accumulation, any operand dtype).
#pragma once
#include "core/nn_ops.h"

namespace xattn::cpu {

// See GemmArgs. Each output tile is computed by one task in a fixed K order; when K is split for
// parallelism the split count depends only on the shape, so results never depend on the thread count.
void gemm(const GemmArgs& g);

}  // namespace xattn::cpu
