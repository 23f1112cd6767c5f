// A point inside enqueued compute that a transfer may start from, before the compute around it is done: a
// device counter that a kernel bumps, reaching `value` once the work the signal stands for is finished.
#pragma once
#include <cstdint>

namespace xattn {

struct DeviceSignal {
  uint32_t* counter = nullptr;  // null: no such point; the work is done once the compute enqueued so far is
  uint32_t value = 0;           // reached when (int32_t)(*counter - value) >= 0 (the counter may wrap)
};

}  // namespace xattn
