// Point-to-point and collective transfers between the ranks of one job.
//
// Ordering contract shared by every backend: a posted exchange reads its send buffer only after all
// compute enqueued before the post; compute enqueued after wait() sees the received bytes. The caller
// must not touch either buffer between post and wait.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace xattn {

struct Exchange {
  const void* send = nullptr;
  size_t send_bytes = 0;
  int to = -1;  // -1: no send
  void* recv = nullptr;
  size_t recv_bytes = 0;
  int from = -1;  // -1: no receive
};

// What a schedule's transfers need most, for transports with more than one path: kernels beside them at
// full speed (copy engines take no SMs) or the link's peak bandwidth (NCCL's kernels reach more of it
// than copy engines with a staging copy). Every rank must set the same need for the same posts.
enum class TransferNeed { ComputeBeside, PeakBandwidth };

class Transport {
 public:
  using Handle = uint64_t;
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* name() const = 0;

  // Starts several transfers at once (a batch, like ncclGroupStart/End) and returns a handle.
  virtual Handle post(const std::vector<Exchange>& batch) = 0;
  // Blocks (CPU) or orders the compute stream (CUDA) after the batch; throws PeerLost/Timeout on failure.
  virtual void wait(Handle h) = 0;
  // The posts that follow, up to the next wait(), read their send buffers once the compute enqueued before
  // this call is done, not all compute enqueued before each post: a schedule can enqueue compute the sends
  // do not need first and post after it. No effect where compute runs synchronously (CPU).
  virtual void mark_send_ready() {}
  // In-place sum across ranks of float32 device buffers; same call order on every rank.
  virtual void all_reduce_sum_f32(float* data, size_t n) = 0;
  // The same for several buffers at once, started now and finished by wait(handle): compute enqueued
  // meanwhile overlaps the reduction (gradients of one layer while the next layer's backward runs).
  // Transports that cannot overlap say so (can_post_all_reduce) and the caller reduces synchronously.
  virtual bool can_post_all_reduce() const { return false; }
  virtual Handle post_all_reduce_sum_f32(const std::vector<std::pair<float*, size_t>>& /*buffers*/) {
    fail(ErrorCode::InvalidArgument, std::string("the ") + name() + " transport cannot run an all-reduce in the background");
  }
  virtual void barrier() = 0;

  // Applies to the posts that follow, until changed; ComputeBeside is the default.
  virtual void set_transfer_need(TransferNeed /*need*/) {}
  // About how many SMs a point-to-point transfer holds while it runs beside compute (NCCL's kernels: a CTA
  // per channel), so kernels can leave room for it; 0 where transfers take none (copy engines, CPU
  // threads), kManyTransferSms where there may be many.
  static constexpr int kManyTransferSms = 16;
  virtual int transfer_sms() const { return 0; }
  bool transfers_use_sms() const { return transfer_sms() > 0; }
  // How point-to-point transfers travel, for logs and engine.info() (e.g. "nccl, copy engines to 1 of 1 peers").
  virtual std::string describe() const { return name(); }

  // Bytes this rank has sent since creation (for metrics and the bench).
  virtual uint64_t bytes_sent() const = 0;
};

}  // namespace xattn
