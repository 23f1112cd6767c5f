#include "core/device_tensor.h"

#include <atomic>

#include "core/error.h"

namespace xattn {

namespace {
std::atomic<uint64_t> g_next_id{1};
}  // namespace

DeviceTensor::DeviceTensor(std::shared_ptr<Backend> be, std::vector<int64_t> shape, DType dtype, Kind kind)
    : be_(std::move(be)), shape_(std::move(shape)), dtype_(dtype), kind_(kind), id_(g_next_id.fetch_add(1)) {
  for (int64_t n : shape_) require(n >= 0, ErrorCode::InvalidArgument, "tensor dimensions must be >= 0");
  data_ = be_->alloc(bytes() ? bytes() : 1);
}

DeviceTensor::~DeviceTensor() {
  if (data_) be_->free(data_);
}

int64_t DeviceTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

std::string DeviceTensor::describe() const {
  std::string s = kind_ == Kind::Int32 ? "int32[" : std::string(dtype_name(dtype_)) + "[";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "]";
}

}  // namespace xattn
