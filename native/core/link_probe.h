// How fast this job's ranks exchange data: the schedules pick their pipelining from it.
#pragma once
#include <cstddef>

#include "core/backend.h"
#include "core/transport.h"

namespace xattn {

// Seconds per ring exchange (send `bytes` to rank+1, receive as many from rank-1) over `iters` timed
// exchanges after one untimed: their mean, and the fastest. Zeros at P = 1. Every rank must call it at
// the same point.
struct ExchangeTimes {
  double mean = 0, best = 0;
};
ExchangeTimes time_ring_exchange(Backend& be, Transport& tr, size_t bytes, int iters);

// The ranks' ring-exchange bandwidth in GB/s (the same value on every rank); 0 at P = 1. From each
// rank's fastest of several exchanges: a single one also times the host's post and wait and the ranks'
// skew, which on NVLink are longer than the transfer.
double probe_link_gbps(Backend& be, Transport& tr);

}  // namespace xattn
