// The transport of a single-rank job: nothing to exchange.
#pragma once
#include "core/error.h"
#include "core/transport.h"

namespace xattn {

class LocalTransport : public Transport {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* name() const override { return "local"; }
  Handle post(const std::vector<Exchange>&) override {
    fail(ErrorCode::Internal, "a single-rank job has no peer to exchange with");
  }
  void wait(Handle) override {}
  void all_reduce_sum_f32(float*, size_t) override {}
  void barrier() override {}
  uint64_t bytes_sent() const override { return 0; }
};

}  // namespace xattn
