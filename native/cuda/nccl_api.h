// The few NCCL entry points xattn uses, loaded with dlopen at run time so the build never needs nccl.h.
// Declarations follow NCCL's public C ABI (nccl.h): enums are C ints, ncclUniqueId is 128 bytes by value.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace xattn::nccl {

struct UniqueId {
  char internal[128];
};
struct CommOpaque;
using Comm = CommOpaque*;

// ncclResult_t values
enum Result : int {
  kSuccess = 0, kUnhandledCudaError = 1, kSystemError = 2, kInternalError = 3, kInvalidArgument = 4,
  kInvalidUsage = 5, kRemoteError = 6, kInProgress = 7
};
constexpr int kUint8 = 1;    // ncclUint8
constexpr int kFloat32 = 7;  // ncclFloat32
constexpr int kSum = 0;      // ncclSum

struct Api {
  std::string path;  // the library that was loaded
  int (*GetVersion)(int*);
  int (*GetUniqueId)(UniqueId*);
  int (*CommInitRank)(Comm*, int nranks, UniqueId id, int rank);
  int (*CommDestroy)(Comm);
  int (*CommAbort)(Comm);
  int (*CommGetAsyncError)(Comm, int*);
  const char* (*GetErrorString)(int);
  const char* (*GetLastError)(Comm);  // may be null (NCCL < 2.13)
  int (*GroupStart)();
  int (*GroupEnd)();
  int (*Send)(const void*, size_t count, int dtype, int peer, Comm, cudaStream_t);
  int (*Recv)(void*, size_t count, int dtype, int peer, Comm, cudaStream_t);
  int (*AllReduce)(const void*, void*, size_t count, int dtype, int op, Comm, cudaStream_t);
};

// Loads NCCL once: $XATTN_NCCL_LIB if set, else libnccl.so.2 from the loader path, else the pip wheel
// (site-packages/nvidia/nccl/lib). Throws XattnError(Nccl) naming every path tried.
const Api& api();

// Throws XattnError(Nccl) with NCCL's message when r is not success.
void check(int r, const char* what, Comm comm = nullptr);

}  // namespace xattn::nccl
