#include "cuda/nccl_transport.h"

#include <condition_variable>
#include <cstring>
#include <memory>

#include "cuda/cuda_check.h"

namespace xattn {
namespace {

struct JoinState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int result = nccl::kSuccess;
  const char* step = "ncclCommInitRank";
  nccl::Comm comm = nullptr;
};

// First contact with both ring neighbours plus one all-reduce: NCCL connects peers lazily, so a
// transfer that is the first to a peer could otherwise stall inside a timed step.
int warm_up(const nccl::Api& a, nccl::Comm c, int rank, int world, float* scratch, cudaStream_t s) {
  const int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  int r = a.GroupStart();
  if (r == nccl::kSuccess) {
    a.Send(scratch, 16, nccl::kUint8, next, c, s);
    a.Recv(scratch + 16, 16, nccl::kUint8, prev, c, s);
    a.Send(scratch, 16, nccl::kUint8, prev, c, s);
    a.Recv(scratch + 32, 16, nccl::kUint8, next, c, s);
    r = a.GroupEnd();
  }
  if (r == nccl::kSuccess) r = a.AllReduce(scratch + 48, scratch + 48, 1, nccl::kFloat32, nccl::kSum, c, s);
  if (r == nccl::kSuccess && cudaStreamSynchronize(s) != cudaSuccess) r = nccl::kUnhandledCudaError;
  return r;
}

}  // namespace

NcclTransport::NcclTransport(const std::vector<uint8_t>& unique_id, int rank, int world, CudaBackend& backend,
                             int timeout_ms)
    : backend_(backend), rank_(rank), world_(world), timeout_ms_(timeout_ms) {
  require(unique_id.size() == sizeof(nccl::UniqueId), ErrorCode::InvalidArgument,
          "NCCL unique id must be " + std::to_string(sizeof(nccl::UniqueId)) + " bytes, got " +
              std::to_string(unique_id.size()));
  require(world >= 1, ErrorCode::InvalidArgument, "world size must be >= 1, got " + std::to_string(world));
  require(rank >= 0 && rank < world, ErrorCode::InvalidArgument,
          "rank " + std::to_string(rank) + " is outside 0.." + std::to_string(world - 1));
  require(timeout_ms > 0, ErrorCode::InvalidArgument, "timeout_ms must be > 0");
  nccl::api();  // fails early with the list of paths tried
  backend_.activate();
  int least = 0, greatest = 0;
  XATTN_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  XATTN_CUDA_CHECK(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, greatest));
  XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  XATTN_CUDA_CHECK(cudaMalloc(&scratch_, 64 * sizeof(float)));
  XATTN_CUDA_CHECK(cudaMemsetAsync(scratch_, 0, 64 * sizeof(float), comm_stream_));
  nccl::UniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  join(id);
  hook_id_ = backend_.add_wait_hook([this] { throw_if_failed(); });
  watchdog_ = std::thread([this] { watchdog(); });
  if (world_ > 1) {
    try {
      link_copy_engines();
    } catch (...) {
      shutdown();
      throw;
    }
  }
}

void NcclTransport::gather(const void* mine, size_t bytes, void* all) {
  backend_.activate();
  char* buf = nullptr;
  XATTN_CUDA_CHECK(cudaMalloc(&buf, bytes * world_));
  try {
    XATTN_CUDA_CHECK(cudaMemcpy(buf + bytes * rank_, mine, bytes, cudaMemcpyHostToDevice));
    std::vector<Exchange> batch;
    for (int p = 0; p < world_; ++p)
      if (p != rank_) batch.push_back({buf + bytes * rank_, bytes, p, buf + bytes * p, bytes, p});
    host_wait(post(batch));
    XATTN_CUDA_CHECK(cudaMemcpy(all, buf, bytes * world_, cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(buf);
    throw;
  }
  XATTN_CUDA_CHECK(cudaFree(buf));
}

// Copy-engine links for the peers that allow them, then one exchange with both ring neighbours through
// them: a path that cannot work fails here, at start, not inside a step.
void NcclTransport::link_copy_engines() {
  auto links = std::make_unique<CopyEngineLinks>(rank_, world_, backend_.device(),
                                                 [this](const void* mine, size_t n, void* all) { gather(mine, n, all); });
  if (links->linked_count() == 0) return;
  links_ = std::move(links);
  const int next = (rank_ + 1) % world_, prev = (rank_ + world_ - 1) % world_;
  host_wait(post({{scratch_, 64, next, scratch_ + 16, 64, prev}, {scratch_, 64, prev, scratch_ + 32, 64, next}}));
}

bool NcclTransport::transfers_use_sms() const {
  return world_ > 1 && (!links_ || need_ == TransferNeed::PeakBandwidth || links_->linked_count() < world_ - 1);
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

// ncclCommInitRank and the warm-up block until every rank arrives, so they run on a helper thread while
// this one waits with the timeout; on timeout the half-made communicator is aborted (the helper is
// detached and only touches state it shares by pointer).
void NcclTransport::join(const nccl::UniqueId& id) {
  const nccl::Api& a = nccl::api();
  auto st = std::make_shared<JoinState>();
  const int dev = backend_.device(), rank = rank_, world = world_;
  float* scratch = scratch_;
  cudaStream_t cs = comm_stream_;
  std::thread([st, &a, id, dev, rank, world, scratch, cs] {
    cudaSetDevice(dev);
    nccl::Comm c = nullptr;
    int r = a.CommInitRank(&c, world, id, rank);
    {
      std::lock_guard<std::mutex> lock(st->mu);
      st->comm = c;
      st->step = "NCCL warm-up exchange";
    }
    if (r == nccl::kSuccess && world > 1) r = warm_up(a, c, rank, world, scratch, cs);
    std::lock_guard<std::mutex> lock(st->mu);
    st->result = r;
    st->done = true;
    st->cv.notify_all();
  }).detach();

  std::unique_lock<std::mutex> lock(st->mu);
  if (!st->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms_), [&] { return st->done; })) {
    if (st->comm) a.CommAbort(st->comm);
    // The helper may still hold the stream and scratch: leak them rather than free under it.
    comm_stream_ = nullptr;
    scratch_ = nullptr;
    ready_ = nullptr;
    fail(ErrorCode::Timeout, std::string(st->step) + " did not finish within " + std::to_string(timeout_ms_) +
                                 " ms (rank " + std::to_string(rank_) + " of " + std::to_string(world_) +
                                 "): is every rank up and reachable?");
  }
  if (st->result != nccl::kSuccess) {
    if (st->comm) a.CommAbort(st->comm);
    nccl::check(st->result, st->step);
  }
  comm_ = st->comm;
}

NcclTransport::~NcclTransport() { shutdown(); }

void NcclTransport::shutdown() {
  backend_.remove_wait_hook(hook_id_);
  stop_ = true;
  if (watchdog_.joinable()) watchdog_.join();
  cudaSetDevice(backend_.device());
  if (failed_ && links_) links_->release_waits();
  const nccl::Api& a = nccl::api();
  if (comm_ && !failed_) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    cudaError_t q;
    while ((q = cudaStreamQuery(comm_stream_)) == cudaErrorNotReady && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (q == cudaSuccess)
      a.CommDestroy(comm_);
    else
      a.CommAbort(comm_);
  }
  links_.reset();
  for (auto& p : pending_) cudaEventDestroy(p.done);
  for (auto ev : free_events_) cudaEventDestroy(ev);
  if (ready_) cudaEventDestroy(ready_);
  if (scratch_) cudaFree(scratch_);
  if (comm_stream_) cudaStreamDestroy(comm_stream_);
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
  for (const auto& x : batch) {
    require(x.to >= -1 && x.to < world_ && x.from >= -1 && x.from < world_, ErrorCode::InvalidArgument,
            "exchange peer out of range (to " + std::to_string(x.to) + ", from " + std::to_string(x.from) +
                ", world " + std::to_string(world_) + ")");
    require(x.to < 0 || x.send_bytes == 0 || x.send, ErrorCode::InvalidArgument, "exchange send buffer is null");
    require(x.from < 0 || x.recv_bytes == 0 || x.recv, ErrorCode::InvalidArgument, "exchange recv buffer is null");
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
  uint64_t sent = 0;
  bool any_nccl = false;
  for (const auto& x : batch)
    any_nccl |= (x.to >= 0 && x.send_bytes > 0 && !by_ce(x.to)) || (x.from >= 0 && x.recv_bytes > 0 && !by_ce(x.from));
  if (any_nccl) {
    nccl::check(a.GroupStart(), "ncclGroupStart", comm_);
    int r = nccl::kSuccess;
    for (const auto& x : batch) {
      if (r == nccl::kSuccess && x.to >= 0 && x.send_bytes > 0 && !by_ce(x.to))
        r = a.Send(x.send, x.send_bytes, nccl::kUint8, x.to, comm_, comm_stream_);
      if (r == nccl::kSuccess && x.from >= 0 && x.recv_bytes > 0 && !by_ce(x.from))
        r = a.Recv(x.recv, x.recv_bytes, nccl::kUint8, x.from, comm_, comm_stream_);
    }
    const int end = a.GroupEnd();
    nccl::check(r, "ncclSend/ncclRecv", comm_);
    nccl::check(end, "ncclGroupEnd", comm_);
  }
  // Copy-engine transfers start from the same ready point on their own streams; the comm stream (and so
  // the batch's done event) waits for them.
  if (ce) links_->post(batch, ready_, comm_stream_);
  for (const auto& x : batch)
    if (x.to >= 0) sent += x.send_bytes;
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
