// Counter-based N(0, 1) samples: element `index` of stream `key` is a pure function of (key, index), so
// any backend, thread count or sharding produces the same values for the same global element (up to the
// last bits of the platform's log/sin/cos). Used for synthetic data and weight initialisation, which
// would otherwise be generated on the host and copied in every step.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define XATTN_HD __host__ __device__ __forceinline__
#else
#define XATTN_HD inline
#endif

namespace xattn::rng {

// SplitMix64's finaliser: a bijective mix with full avalanche.
XATTN_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Box-Muller on one 64-bit hash per pair of elements: even indices take the cosine, odd the sine.
XATTN_HD float normal(uint32_t key, uint64_t index) {
  const uint64_t h = mix64(mix64(static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) ^ (index >> 1));
  const float u = (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);  // (0, 1): log is finite
  const float v = static_cast<float>(h & 0xffffffULL) * (1.0f / 16777216.0f);
  const float r = sqrtf(-2.0f * logf(u));
  const float angle = 6.283185307179586f * v;
  return r * ((index & 1) ? sinf(angle) : cosf(angle));
}

// Element i of a [batch, rows, width] shard whose rows start at row_offset of a [batch, total_rows, width]
// whole: its index in the whole, so every shard of the whole holds the same values.
struct ShardLayout {
  int64_t rows, row_offset, total_rows, width;
};

XATTN_HD uint64_t global_index(const ShardLayout& s, int64_t i) {
  const int64_t per_sample = s.rows * s.width;
  const int64_t b = i / per_sample, rest = i - b * per_sample;
  return static_cast<uint64_t>((b * s.total_rows + s.row_offset) * s.width + rest);
}

}  // namespace xattn::rng
