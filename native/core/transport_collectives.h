// Collectives written once over the point-to-point Transport interface (post/wait), for transports
// without native collectives (TCP). Every rank must call them in the same order.
#pragma once
#include <cstddef>

#include "core/transport.h"

namespace xattn {

// Ring reduce-scatter then ring all-gather. Each chunk is summed exactly once, on one rank, then
// copied to all, so every rank ends with bit-identical results.
void ring_all_reduce_sum_f32(Transport& t, float* data, size_t n);

// Dissemination barrier: ceil(log2 P) rounds of empty messages to rank r+2^k.
void dissemination_barrier(Transport& t);

}  // namespace xattn
