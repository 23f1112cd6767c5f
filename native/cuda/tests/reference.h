// Independent fp64 reference for the GPU checks: naive attention with a materialised softmax.
#pragma once
#include <cstdint>
#include <vector>

#include "core/attn.h"

namespace xattn::ref {

struct Problem {
  AttnDims d;
  int64_t lq = 0, lkv = 0, kv_offset = 0;
  std::vector<int32_t> mask;            // [B, lq, 2] global [begin, end), empty = all visible
  std::vector<double> q, k, v, dout;    // values exactly representable in d.dtype
};

// O [B, lq, H, D] and LSE [B, H, lq] (natural log; -inf and O = 0 for rows that see nothing).
void forward(const Problem& p, std::vector<double>& o, std::vector<double>& lse);
// Gradients for one block given the global lse and drow = rowsum(dO * O).
void backward(const Problem& p, const std::vector<double>& lse, const std::vector<double>& drow,
              std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv);

// Deterministic random numbers (xorshift) so failures can be replayed from the seed.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() { double a = 0; for (int i = 0; i < 4; ++i) a += uniform(); return (a - 2.0) * 1.7320508; }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
};

// Error statistics of out against ref (ignores positions where both are -inf).
struct Err {
  double max_abs = 0, rel_l2 = 0;
  int64_t bad = 0;  // NaN, unwritten, or infinity mismatches
};
Err compare(const std::vector<double>& out, const std::vector<double>& ref);

}  // namespace xattn::ref
