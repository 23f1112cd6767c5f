// Entry points to the CUDA engine that need no CUDA headers: the binding and the checks use only these.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/transport.h"

namespace xattn {

// Number of usable CUDA devices; 0 when there is no driver or GPU. Never throws.
int cuda_device_count();
// Marketing name of a device ("NVIDIA H100 80GB HBM3"); throws XattnError(Cuda) for a bad index.
std::string cuda_device_name(int device);
std::unique_ptr<Backend> make_cuda_backend(int device);

// 128 opaque bytes from ncclGetUniqueId (rank 0 makes it; the rendezvous hands it to every rank).
std::vector<uint8_t> nccl_unique_id();
// Joins the NCCL communicator (blocks until all `world` ranks join or timeout_ms passes). `backend`
// must come from make_cuda_backend; transfers are ordered against its compute stream.
std::unique_ptr<Transport> make_nccl_transport(const std::vector<uint8_t>& id, int rank, int world,
                                               Backend& backend, int timeout_ms);

}  // namespace xattn
