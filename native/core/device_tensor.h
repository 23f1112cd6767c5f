// A tensor in a backend's memory, freed when the last owner lets go.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"

namespace xattn {

class DeviceTensor {
 public:
  // Storage dtype, or Int32 for index data (masks).
  enum class Kind { Float, Int32 };
  DeviceTensor(std::shared_ptr<Backend> be, std::vector<int64_t> shape, DType dtype, Kind kind = Kind::Float);
  ~DeviceTensor();
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  void* data() const { return data_; }
  // This tensor's identity: unique for the process's lifetime, unlike its address, which a later tensor
  // may get.
  uint64_t id() const { return id_; }
  template <typename T> T* as() const { return static_cast<T*>(data_); }
  const std::vector<int64_t>& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Kind kind() const { return kind_; }
  int64_t numel() const;
  size_t bytes() const { return static_cast<size_t>(numel()) * (kind_ == Kind::Int32 ? 4 : dtype_size(dtype_)); }
  std::string describe() const;  // e.g. "bfloat16[1, 64, 8, 64]"
  // Waits for the backend's queued work, then copies the whole tensor to host memory.
  void backend_synchronize_and_copy(void* host) const {
    be_->synchronize();
    be_->to_host(host, data_, bytes());
  }

 private:
  std::shared_ptr<Backend> be_;
  std::vector<int64_t> shape_;
  DType dtype_;
  Kind kind_;
  void* data_ = nullptr;
  uint64_t id_;
};

using TensorPtr = std::shared_ptr<DeviceTensor>;

}  // namespace xattn
