// Contiguous sequence sharding: rank i of P owns rows [begin, begin + length); the first
// (total % P) ranks get one extra row, so any length and any P >= 1 work.
#pragma once
#include <algorithm>
#include <cstdint>

namespace xattn {

struct Shard {
  int64_t begin = 0;
  int64_t length = 0;
};

inline Shard shard_of(int64_t total, int parts, int index) {
  const int64_t base = total / parts, extra = total % parts;
  return {index * base + std::min<int64_t>(index, extra), base + (index < extra ? 1 : 0)};
}

inline int64_t max_shard(int64_t total, int parts) { return total / parts + (total % parts ? 1 : 0); }

}  // namespace xattn
