// How fast this job's ranks exchange data: the schedules pick their pipelining from it.
#pragma once
#include <cstddef>

#include "core/backend.h"
#include "core/transport.h"

namespace xattn {

// Seconds per ring exchange (send `bytes` to rank+1, receive as many from rank-1), after one untimed
// exchange; 0 at P = 1. Every rank must call it at the same point.
double time_ring_exchange(Backend& be, Transport& tr, size_t bytes, int iters);

// The ranks' mean ring-exchange bandwidth in GB/s (the same value on every rank); 0 at P = 1.
double probe_link_gbps(Backend& be, Transport& tr);

}  // namespace xattn
