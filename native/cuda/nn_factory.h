// Entry point to the CUDA model ops that needs no CUDA headers (for the binding).
#pragma once
#include <memory>

#include "core/backend.h"
#include "core/nn_ops.h"

namespace xattn {

// NnOps for a backend made by make_cuda_backend (cuBLAS GEMMs + CUDA kernels). cuBLAS loads at the
// first GEMM, so a machine without it still runs everything else. Throws for any other backend.
std::unique_ptr<NnOps> make_cuda_nn_ops(Backend& backend);

}  // namespace xattn
