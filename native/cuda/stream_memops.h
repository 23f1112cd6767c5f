// The driver's stream memory operations (cuStreamWaitValue32 / cuStreamWriteValue32), fetched through the
// runtime's cudaGetDriverEntryPointByVersion so nothing links libcuda directly. They let one GPU stream
// wait on a counter that another process's stream bumps, with no host thread involved.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/device_signal.h"

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

// Throws XattnError naming `what` where a memory operation returned a CUresult other than success.
void check_memop(int result, const char* what);

// Makes `s` wait until `sig` is reached (its counter set, stream_memops() loaded).
void wait_for_signal(cudaStream_t s, const DeviceSignal& sig);

}  // namespace xattn::cuda
