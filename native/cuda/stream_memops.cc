#include "cuda/stream_memops.h"

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
  void* w = nullptr;
  void* v = nullptr;
  cudaDriverEntryPointQueryResult qw{}, qv{};
  // Version 12000 selects the _v2 entry points (CUDA >= 11.7), which need no driver module option.
  if (cudaGetDriverEntryPointByVersion("cuStreamWaitValue32", &w, 12000, cudaEnableDefault, &qw) != cudaSuccess ||
      cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &v, 12000, cudaEnableDefault, &qv) != cudaSuccess ||
      qw != cudaDriverEntryPointSuccess || qv != cudaDriverEntryPointSuccess || !w || !v) {
    cudaGetLastError();
    l.why = "the CUDA driver has no cuStreamWaitValue32/cuStreamWriteValue32";
    return l;
  }
  g_wait = reinterpret_cast<DriverWait>(w);
  g_write = reinterpret_cast<DriverWait>(v);
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
