// NcclTransport's lifecycle: joining the communicator within the timeout, the warm-up, the copy-engine
// links, and tearing it all down again (also after a peer died).
#include <condition_variable>
#include <cstring>
#include <memory>
#include <thread>

#include "cuda/cuda_check.h"
#include "cuda/nccl_transport.h"

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

}  // namespace xattn
