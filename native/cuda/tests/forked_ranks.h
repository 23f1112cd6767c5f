// Multi-GPU test programs without Node: fork one process per rank and hand NCCL's unique id from rank 0
// to the others through a file in /tmp.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xattn::forked {

// Runs `rank_main(rank, world, id)` in `world` forked processes (NCCL_NVLS_ENABLE=0 unless set), waits for
// them, prints "N passed, M failed" and returns 0 when every rank exited 0. `id` is rank 0's NCCL unique id.
int run_ranks(int world, const std::function<int(int rank, int world, const std::vector<uint8_t>& id)>& rank_main);

}  // namespace xattn::forked
