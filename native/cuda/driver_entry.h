// Driver API functions fetched through the runtime (cudaGetDriverEntryPointByVersion), so nothing links
// libcuda directly and the library still loads on machines without a GPU driver.
#pragma once

namespace xattn::cuda {

// The driver's `name` at ABI `version` (e.g. 12000), or nullptr where the driver lacks it.
void* driver_entry(const char* name, int version);

template <typename Fn>
Fn driver_fn(const char* name, int version) {
  return reinterpret_cast<Fn>(driver_entry(name, version));
}

}  // namespace xattn::cuda
