#include "cuda/cuda_factory.h"

#include <cuda_runtime_api.h>

#include <cstring>

#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/nccl_api.h"
#include "cuda/nccl_transport.h"

namespace xattn {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string cuda_device_name(int device) {
  cudaDeviceProp prop{};
  XATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

std::vector<uint8_t> nccl_unique_id() {
  nccl::UniqueId id{};
  nccl::check(nccl::api().GetUniqueId(&id), "ncclGetUniqueId");
  std::vector<uint8_t> out(sizeof(id.internal));
  std::memcpy(out.data(), id.internal, out.size());
  return out;
}

std::unique_ptr<Transport> make_nccl_transport(const std::vector<uint8_t>& id, int rank, int world, Backend& backend,
                                               int timeout_ms) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  require(cuda != nullptr, ErrorCode::InvalidArgument,
          std::string("the NCCL transport needs the CUDA backend, got '") + backend.name() + "'");
  return std::make_unique<NcclTransport>(id, rank, world, *cuda, timeout_ms);
}

}  // namespace xattn
