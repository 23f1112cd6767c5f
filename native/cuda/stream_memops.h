// The driver's stream memory operations (cuStreamWaitValue32 / cuStreamWriteValue32), fetched through the
// runtime's cudaGetDriverEntryPointByVersion so nothing links libcuda directly. They let one GPU stream
// wait on a counter that another process's stream bumps, with no host thread involved.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace xattn::cuda {

struct StreamMemOps {
  // Both return a CUresult (0 = success). The wait is satisfied when (int32_t)(*addr - value) >= 0, so
  // counters may wrap; the write is preceded by a memory barrier (earlier writes of the stream land first).
  int (*wait_geq)(cudaStream_t, uint32_t* addr, uint32_t value) = nullptr;
  int (*write)(cudaStream_t, uint32_t* addr, uint32_t value) = nullptr;
  explicit operator bool() const { return wait_geq && write; }
};

// Loaded once; empty (false) where the driver lacks them. `why` gets the reason when empty.
const StreamMemOps& stream_memops(const char** why = nullptr);

}  // namespace xattn::cuda
