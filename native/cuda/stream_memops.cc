#include "cuda/stream_memops.h"

#include "cuda/driver_entry.h"

namespace xattn::cuda {
namespace {

// Driver ABI (cuda.h) without including it: CUresult is an int enum, CUdeviceptr a 64-bit integer.
using DriverWait = int (*)(cudaStream_t, unsigned long long, unsigned int, unsigned int);
constexpr unsigned kWaitGeq = 0x0;        // CU_STREAM_WAIT_VALUE_GEQ
constexpr unsigned kWriteDefault = 0x0;   // CU_STREAM_WRITE_VALUE_DEFAULT (with a memory barrier)
DriverWait g_wait = nullptr, g_write = nullptr;

int wait_geq(cudaStream_t s, uint32_t* addr, uint32_t value) {
  return g_wait(s, reinterpret_cast<unsigned long long>(addr), value, kWaitGeq);
}
int write(cudaStream_t s, uint32_t* addr, uint32_t value) {
  return g_write(s, reinterpret_cast<unsigned long long>(addr), value, kWriteDefault);
}

struct Loaded {
  StreamMemOps ops;
  const char* why = nullptr;
};

Loaded load() {
  Loaded l;
  // Version 12000 selects the _v2 entry points (CUDA >= 11.7), which need no driver module option.
  g_wait = driver_fn<DriverWait>("cuStreamWaitValue32", 12000);
  g_write = driver_fn<DriverWait>("cuStreamWriteValue32", 12000);
  if (!g_wait || !g_write) {
    l.why = "the CUDA driver has no cuStreamWaitValue32/cuStreamWriteValue32";
    return l;
  }
  l.ops.wait_geq = wait_geq;
  l.ops.write = write;
  return l;
}

}  // namespace

const StreamMemOps& stream_memops(const char** why) {
  static const Loaded loaded = load();
  if (why) *why = loaded.why;
  return loaded.ops;
}

}  // namespace xattn::cuda
