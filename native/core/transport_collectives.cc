#include "core/transport_collectives.h"

#include <vector>

namespace xattn {
namespace {

// Chunk c of the ring covers [c*n/P, (c+1)*n/P): ragged, possibly empty when n < P.
size_t chunk_begin(size_t n, int p, int c) { return n * size_t(c) / size_t(p); }

int mod(int a, int p) { return ((a % p) + p) % p; }

}  // namespace

void ring_all_reduce_sum_f32(Transport& t, float* data, size_t n) {
  const int p = t.world_size(), r = t.rank();
  if (p == 1) return;
  const int next = mod(r + 1, p), prev = mod(r - 1, p);
  std::vector<float> incoming(n / size_t(p) + 1);
  auto exchange = [&](int send_chunk, int recv_chunk, float* recv_into) {
    size_t sb = chunk_begin(n, p, send_chunk), se = chunk_begin(n, p, send_chunk + 1);
    size_t rb = chunk_begin(n, p, recv_chunk), re = chunk_begin(n, p, recv_chunk + 1);
    Exchange ex;
    ex.send = data + sb;
    ex.send_bytes = (se - sb) * sizeof(float);
    ex.to = next;
    ex.recv = recv_into ? recv_into : data + rb;
    ex.recv_bytes = (re - rb) * sizeof(float);
    ex.from = prev;
    t.wait(t.post({ex}));
    return rb;
  };
  // Reduce-scatter: after step s, rank r holds the partial sum of chunk r-s-1 over s+2 ranks.
  for (int s = 0; s < p - 1; ++s) {
    int recv_chunk = mod(r - s - 1, p);
    size_t rb = exchange(mod(r - s, p), recv_chunk, incoming.data());
    size_t count = chunk_begin(n, p, recv_chunk + 1) - rb;
    for (size_t i = 0; i < count; ++i) data[rb + i] += incoming[i];
  }
  // All-gather: rank r now owns the final chunk r+1 and passes finished chunks along the ring.
  for (int s = 0; s < p - 1; ++s) exchange(mod(r + 1 - s, p), mod(r - s, p), nullptr);
}

void dissemination_barrier(Transport& t) {
  const int p = t.world_size(), r = t.rank();
  for (int k = 1; k < p; k *= 2) {
    Exchange ex;
    ex.to = mod(r + k, p);
    ex.from = mod(r - k, p);
    t.wait(t.post({ex}));
  }
}

}  // namespace xattn
