// The element-wise checks of xattn_cuda_check (check_kernels_ops.cc).
#pragma once
#include "cuda/cuda_backend.h"

namespace xattn::check {

// Runs every element-wise check, adding failures to g_failures; returns how many checks ran.
int check_elementwise_ops(CudaBackend& be);

}  // namespace xattn::check
