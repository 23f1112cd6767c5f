// NcclTransport's data path: posting batches (NCCL or copy engines), waits, all-reduce, barrier, and the
// watchdog that turns a stall or an async error into a failure. Setup and teardown: nccl_transport_setup.cc.
#include "cuda/nccl_transport.h"

#include <algorithm>
#include <thread>

#include "cuda/cuda_check.h"

namespace xattn {

// NCCL drives host-memory (SHM) and network paths with 2 channels, one CTA each (NCCL_DEBUG=INFO on 2x
// H200), and P2P paths (NVLink) with many more; with NCCL_P2P_DISABLE set every hop takes the former.
int NcclTransport::transfer_sms() const {
  const bool uses_sms =
      world_ > 1 && (!links_ || need_ == TransferNeed::PeakBandwidth || links_->linked_count() < world_ - 1);
  if (!uses_sms) return 0;
  return nccl_p2p_disabled_ ? 2 : kManyTransferSms;
}

std::string NcclTransport::describe() const {
  if (world_ == 1) return "nccl";
  if (!links_) {
    std::string why;
    CopyEngineLinks::enabled_by_env(&why);
    return "nccl" + (why.empty() ? std::string() : " (copy engines off: " + why + ")");
  }
  return "nccl, copy engines to " + std::to_string(links_->linked_count()) + " of " + std::to_string(world_ - 1) +
         " peers";
}

const std::string& NcclTransport::library() const { return nccl::api().path; }

void NcclTransport::throw_if_failed() const {
  if (!failed_.load()) return;
  std::lock_guard<std::mutex> lock(mu_);
  throw XattnError(fail_code_, fail_msg_);
}

void NcclTransport::fail_and_abort(ErrorCode code, const std::string& msg) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.load()) return;
    fail_code_ = code;
    fail_msg_ = msg;
    failed_ = true;
  }
  // Abort makes NCCL kernels stuck on a dead peer exit, and the release lets copy-engine streams waiting
  // on its counters go on, so the streams drain and host waits return.
  if (links_) links_->release_waits();
  nccl::api().CommAbort(comm_);
}

void NcclTransport::start_on_comm_stream() {
  throw_if_failed();
  backend_.activate();
  if (!ready_marked_) XATTN_CUDA_CHECK(cudaEventRecord(ready_, backend_.stream()));
  XATTN_CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready_, 0));
}

void NcclTransport::mark_send_ready() {
  throw_if_failed();
  backend_.activate();
  XATTN_CUDA_CHECK(cudaEventRecord(ready_, backend_.stream()));
  ready_marked_ = true;
}

Transport::Handle NcclTransport::finish_on_comm_stream(bool waited) {
  cudaEvent_t ev = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_events_.empty()) {
      ev = free_events_.back();
      free_events_.pop_back();
    }
  }
  if (!ev) XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  XATTN_CUDA_CHECK(cudaEventRecord(ev, comm_stream_));
  std::lock_guard<std::mutex> lock(mu_);
  const Handle h = next_handle_++;
  pending_.push_back(Pending{h, ev, Clock::now(), waited, false});
  return h;
}

Transport::Handle NcclTransport::post(const std::vector<Exchange>& batch) {
  uint64_t sent = 0;
  for (const auto& x : batch) {
    require(x.to >= -1 && x.to < world_ && x.from >= -1 && x.from < world_, ErrorCode::InvalidArgument,
            "exchange peer out of range (to " + std::to_string(x.to) + ", from " + std::to_string(x.from) +
                ", world " + std::to_string(world_) + ")");
    require(x.to < 0 || x.send_bytes == 0 || x.send, ErrorCode::InvalidArgument, "exchange send buffer is null");
    require(x.from < 0 || x.recv_bytes == 0 || x.recv, ErrorCode::InvalidArgument, "exchange recv buffer is null");
    if (x.to >= 0) sent += x.send_bytes;
  }
  const nccl::Api& a = nccl::api();
  start_on_comm_stream();
  // Enqueuing can block (a stream's queue full of copy-engine pieces waiting on a dead peer) before the
  // batch is tracked: the watchdog times the post itself too.
  posting_since_ = Clock::now().time_since_epoch().count();
  struct PostingDone {
    std::atomic<Clock::rep>& since;
    ~PostingDone() { since = 0; }
  } posting_done{posting_since_};
  const bool ce = links_ && need_ == TransferNeed::ComputeBeside;
  auto by_ce = [&](int peer) { return ce && links_->linked(peer); };
  auto nccl_send = [&](const Exchange& x) { return x.to >= 0 && x.send_bytes > 0 && !by_ce(x.to); };
  auto nccl_recv = [&](const Exchange& x) { return x.from >= 0 && x.recv_bytes > 0 && !by_ce(x.from); };
  if (std::any_of(batch.begin(), batch.end(), [&](const Exchange& x) { return nccl_send(x) || nccl_recv(x); })) {
    nccl::check(a.GroupStart(), "ncclGroupStart", comm_);
    int r = nccl::kSuccess;
    for (const auto& x : batch) {
      if (r == nccl::kSuccess && nccl_send(x)) r = a.Send(x.send, x.send_bytes, nccl::kUint8, x.to, comm_, comm_stream_);
      if (r == nccl::kSuccess && nccl_recv(x)) r = a.Recv(x.recv, x.recv_bytes, nccl::kUint8, x.from, comm_, comm_stream_);
    }
    const int end = a.GroupEnd();
    nccl::check(r, "ncclSend/ncclRecv", comm_);
    nccl::check(end, "ncclGroupEnd", comm_);
  }
  // Copy-engine transfers start from the same ready point on their own streams; the comm stream (and so
  // the batch's done event) waits for them.
  if (ce) links_->post(batch, ready_, comm_stream_);
  bytes_sent_ += sent;
  return finish_on_comm_stream(false);
}

void NcclTransport::wait(Handle h) {
  ready_marked_ = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending* p = nullptr;
    for (auto& x : pending_)
      if (x.id == h) p = &x;
    require(p && !p->waited, ErrorCode::InvalidArgument,
            "transport handle " + std::to_string(h) + " is unknown or was already waited");
    backend_.activate();
    XATTN_CUDA_CHECK(cudaStreamWaitEvent(backend_.stream(), p->done, 0));
    p->waited = true;
  }
  throw_if_failed();
}

void NcclTransport::all_reduce_sum_f32(float* data, size_t n) {
  if (n == 0) return;
  start_on_comm_stream();
  nccl::check(nccl::api().AllReduce(data, data, n, nccl::kFloat32, nccl::kSum, comm_, comm_stream_),
              "ncclAllReduce", comm_);
  bytes_sent_ += 2 * (world_ - 1) * n * sizeof(float) / world_;
  wait(finish_on_comm_stream(false));
}

Transport::Handle NcclTransport::post_all_reduce_sum_f32(const std::vector<std::pair<float*, size_t>>& buffers) {
  const nccl::Api& a = nccl::api();
  start_on_comm_stream();
  nccl::check(a.GroupStart(), "ncclGroupStart", comm_);
  int r = nccl::kSuccess;
  uint64_t bytes = 0;
  for (const auto& [data, n] : buffers) {
    if (r != nccl::kSuccess || n == 0) continue;
    r = a.AllReduce(data, data, n, nccl::kFloat32, nccl::kSum, comm_, comm_stream_);
    // A ring all-reduce sends 2 (P - 1) / P of the buffer from every rank.
    bytes += 2 * (world_ - 1) * n * sizeof(float) / world_;
  }
  const int end = a.GroupEnd();
  nccl::check(r, "ncclAllReduce", comm_);
  nccl::check(end, "ncclGroupEnd", comm_);
  bytes_sent_ += bytes;
  return finish_on_comm_stream(false);
}

void NcclTransport::barrier() {
  start_on_comm_stream();
  nccl::check(nccl::api().AllReduce(scratch_ + 48, scratch_ + 48, 1, nccl::kFloat32, nccl::kSum, comm_, comm_stream_),
              "ncclAllReduce (barrier)", comm_);
  host_wait(finish_on_comm_stream(false));
}

void NcclTransport::host_wait(Handle h) {
  ready_marked_ = false;
  cudaEvent_t ev = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& x : pending_)
      if (x.id == h) ev = x.done;
  }
  require(ev != nullptr, ErrorCode::Internal, "host_wait on an unknown handle");
  for (;;) {
    throw_if_failed();  // the watchdog turns a timeout or async error into a failure
    const cudaError_t q = cudaEventQuery(ev);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) cuda::throw_cuda(q, "waiting for an NCCL transfer", __FILE__, __LINE__);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& x : pending_)
    if (x.id == h) x.waited = true;
}

void NcclTransport::watchdog() {
  cudaSetDevice(backend_.device());
  const nccl::Api& a = nccl::api();
  while (!stop_.load() && !failed_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    int async = nccl::kSuccess;
    if (a.CommGetAsyncError(comm_, &async) == nccl::kSuccess && async != nccl::kSuccess &&
        async != nccl::kInProgress) {
      fail_and_abort(async == nccl::kRemoteError || async == nccl::kSystemError ? ErrorCode::PeerLost
                                                                                : ErrorCode::Nccl,
                     std::string("NCCL reported an asynchronous error: ") + a.GetErrorString(async) +
                         " (a peer rank probably died); communicator aborted");
      break;
    }
    ErrorCode code = ErrorCode::Nccl;
    std::string why;
    const Clock::rep posting = posting_since_.load();
    if (posting && Clock::now() - Clock::time_point(Clock::duration(posting)) > std::chrono::milliseconds(timeout_ms_))
      why = "posting transfers on rank " + std::to_string(rank_) + " stalled for more than " +
            std::to_string(timeout_ms_) + " ms (peer lost or stalled); communicator aborted";
    if (!why.empty()) {
      fail_and_abort(ErrorCode::Timeout, why);
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = Clock::now();
      for (auto& p : pending_) {
        if (p.complete) continue;
        const cudaError_t q = cudaEventQuery(p.done);
        if (q == cudaSuccess) {
          p.complete = true;
        } else if (q != cudaErrorNotReady) {
          code = ErrorCode::Cuda;
          why = std::string("CUDA error while an NCCL transfer ran: ") + cudaGetErrorString(q);
          break;
        } else if (now - p.posted > std::chrono::milliseconds(timeout_ms_)) {
          code = ErrorCode::Timeout;
          why = "NCCL transfer " + std::to_string(p.id) + " on rank " + std::to_string(rank_) +
                " did not complete within " + std::to_string(timeout_ms_) +
                " ms (peer lost or stalled); communicator aborted";
          break;
        }
      }
      while (!pending_.empty() && pending_.front().complete && pending_.front().waited) {
        free_events_.push_back(pending_.front().done);
        pending_.pop_front();
      }
    }
    if (!why.empty()) {
      fail_and_abort(code, why);
      break;
    }
  }
}

}  // namespace xattn
