#include "cuda/ce_links.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/hmac_sha256.h"
#include "cuda/cuda_check.h"
#include "cuda/stream_memops.h"

namespace xattn {
namespace {

constexpr uint32_t kMagic = 0x78636531;  // "xce1"
constexpr size_t kDefaultSlotBytes = size_t(8) << 20;
constexpr size_t kCounterBytes = 4096;  // room for 2 x 512 counters, keeps the slots page-aligned

// What each rank tells the others at setup (fixed size, sent as raw bytes).
struct Record {
  uint32_t magic;
  uint32_t willing;
  uint64_t slot_bytes;
  Digest256 host;  // hostname + boot id: IPC handles only open on the host that made them
  cudaIpcMemHandle_t handle;
};

Digest256 host_identity() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  std::string id = name;
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  std::getline(boot, boot_id);
  id += "\n" + boot_id;
  return sha256(id.data(), id.size());
}

bool env_off(const char* name, bool zero_means_off) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  const std::string s = v;
  const bool zero = s == "0" || s == "false" || s == "off" || s == "no";
  return zero_means_off ? zero : !zero;
}

size_t slot_bytes_from_env() {
  const char* v = std::getenv("XATTN_CE_SLOT_BYTES");
  if (!v || !*v) return kDefaultSlotBytes;
  const long long n = std::atoll(v);
  require(n >= 256, ErrorCode::InvalidArgument,
          std::string("XATTN_CE_SLOT_BYTES must be at least 256, got '") + v + "'");
  return static_cast<size_t>(n + 255) / 256 * 256;
}

void check_memop(int r, const char* what) {
  if (r != 0) fail(ErrorCode::Cuda, std::string(what) + " failed (CUresult " + std::to_string(r) + ")");
}

}  // namespace

bool CopyEngineLinks::enabled_by_env(std::string* why) {
  if (env_off("XATTN_COPY_ENGINE", true)) {
    if (why) *why = "XATTN_COPY_ENGINE=0";
    return false;
  }
  if (env_off("NCCL_P2P_DISABLE", false)) {
    if (why) *why = "NCCL_P2P_DISABLE is set";
    return false;
  }
  return true;
}

CopyEngineLinks::CopyEngineLinks(int rank, int world, int device, Gather gather)
    : rank_(rank), world_(world), device_(device), slot_bytes_(slot_bytes_from_env()), peers_(new Peer[world]) {
  require(world <= 512, ErrorCode::InvalidArgument, "copy-engine links support at most 512 ranks");
  XATTN_CUDA_CHECK(cudaSetDevice(device_));
  bool willing = world > 1 && enabled_by_env(&why_);
  const char* no_memops = nullptr;
  if (willing && !cuda::stream_memops(&no_memops)) {
    willing = false;
    why_ = no_memops;
  }
  Record mine{};
  mine.magic = kMagic;
  mine.slot_bytes = slot_bytes_;
  mine.host = host_identity();
  if (willing) {
    const size_t bytes = kCounterBytes + size_t(world) * kSlots * slot_bytes_;
    if (cudaMalloc(&region_, bytes) != cudaSuccess || cudaMemset(region_, 0, kCounterBytes) != cudaSuccess ||
        cudaIpcGetMemHandle(&mine.handle, region_) != cudaSuccess) {
      why_ = std::string("cannot export a staging region: ") + cudaGetErrorString(cudaGetLastError());
      if (region_) cudaFree(region_);
      region_ = nullptr;
      willing = false;
    }
  }
  mine.willing = willing ? 1 : 0;
  try {
    std::vector<uint8_t> all(size_t(world) * sizeof(Record));
    gather(&mine, sizeof(Record), all.data());
    link_peers(all, gather);
  } catch (...) {
    unlink_all();
    throw;
  }
}

void CopyEngineLinks::link_peers(const std::vector<uint8_t>& records, const Gather& gather) {
  Record mine;
  std::memcpy(&mine, records.data() + size_t(rank_) * sizeof(Record), sizeof(Record));
  std::vector<uint8_t> opened(world_, 0);
  for (int p = 0; p < world_ && mine.willing; ++p) {
    if (p == rank_) continue;
    Record r;
    std::memcpy(&r, records.data() + size_t(p) * sizeof(Record), sizeof(Record));
    if (r.magic != kMagic || !r.willing) {
      why_ = "rank " + std::to_string(p) + " has copy engines off";
    } else if (r.slot_bytes != slot_bytes_) {
      why_ = "rank " + std::to_string(p) + " uses another XATTN_CE_SLOT_BYTES";
    } else if (r.host != mine.host) {
      why_ = "rank " + std::to_string(p) + " is on another host";
    } else {
      void* base = nullptr;
      const cudaError_t e = cudaIpcOpenMemHandle(&base, r.handle, cudaIpcMemLazyEnablePeerAccess);
      if (e == cudaSuccess) {
        peers_[p].base = static_cast<char*>(base);
        opened[p] = 1;
      } else {
        cudaGetLastError();
        why_ = "cannot map rank " + std::to_string(p) + "'s memory: " + cudaGetErrorString(e);
      }
    }
  }
  // A link needs both ends mapped (data goes one way, credits the other), so agree on it.
  std::vector<uint8_t> all(size_t(world_) * world_);
  gather(opened.data(), opened.size(), all.data());
  int least = 0, greatest = 0;
  XATTN_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  for (int p = 0; p < world_; ++p) {
    Peer& peer = peers_[p];
    if (!peer.base) continue;
    if (!all[size_t(p) * world_ + rank_]) {
      cudaIpcCloseMemHandle(peer.base);
      peer.base = nullptr;
      why_ = "rank " + std::to_string(p) + " cannot map this rank's memory";
      continue;
    }
    XATTN_CUDA_CHECK(cudaStreamCreateWithPriority(&peer.send_stream, cudaStreamNonBlocking, greatest));
    XATTN_CUDA_CHECK(cudaStreamCreateWithPriority(&peer.recv_stream, cudaStreamNonBlocking, greatest));
    XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&peer.send_tail, cudaEventDisableTiming));
    XATTN_CUDA_CHECK(cudaEventCreateWithFlags(&peer.recv_tail, cudaEventDisableTiming));
  }
  if (linked_count() == 0) {
    unlink_all();
  } else {
    XATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&release_stream_, cudaStreamNonBlocking));
  }
}

int CopyEngineLinks::linked_count() const {
  int n = 0;
  for (int p = 0; p < world_; ++p) n += linked(p) ? 1 : 0;
  return n;
}

char* CopyEngineLinks::slot(char* base, int src, uint64_t piece) const {
  return base + kCounterBytes + (size_t(src) * kSlots + (piece - 1) % kSlots) * slot_bytes_;
}

void CopyEngineLinks::send(const void* src, size_t bytes, int to, cudaEvent_t ready, cudaStream_t join) {
  Peer& p = peers_[to];
  const auto& ops = cuda::stream_memops();
  XATTN_CUDA_CHECK(cudaStreamWaitEvent(p.send_stream, ready, 0));
  for (size_t off = 0; off < bytes; off += slot_bytes_) {
    const size_t n = std::min(slot_bytes_, bytes - off);
    const uint64_t piece = p.sent.load() + 1;
    if (piece > kSlots)  // the receiver has copied out what this slot held before
      check_memop(ops.wait_geq(p.send_stream, credit(region_, to), uint32_t(piece - kSlots)), "cuStreamWaitValue32");
    XATTN_CUDA_CHECK(cudaMemcpyAsync(slot(p.base, rank_, piece), static_cast<const char*>(src) + off, n,
                                     cudaMemcpyDefault, p.send_stream));
    check_memop(ops.write(p.send_stream, arrived(p.base, rank_), uint32_t(piece)), "cuStreamWriteValue32");
    p.sent = piece;
  }
  XATTN_CUDA_CHECK(cudaEventRecord(p.send_tail, p.send_stream));
  XATTN_CUDA_CHECK(cudaStreamWaitEvent(join, p.send_tail, 0));
}

void CopyEngineLinks::recv(void* dst, size_t bytes, int from, cudaEvent_t ready, cudaStream_t join) {
  Peer& p = peers_[from];
  const auto& ops = cuda::stream_memops();
  XATTN_CUDA_CHECK(cudaStreamWaitEvent(p.recv_stream, ready, 0));
  for (size_t off = 0; off < bytes; off += slot_bytes_) {
    const size_t n = std::min(slot_bytes_, bytes - off);
    const uint64_t piece = p.received.load() + 1;
    check_memop(ops.wait_geq(p.recv_stream, arrived(region_, from), uint32_t(piece)), "cuStreamWaitValue32");
    XATTN_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, slot(region_, from, piece), n,
                                     cudaMemcpyDefault, p.recv_stream));
    check_memop(ops.write(p.recv_stream, credit(p.base, rank_), uint32_t(piece)), "cuStreamWriteValue32");
    p.received = piece;
  }
  XATTN_CUDA_CHECK(cudaEventRecord(p.recv_tail, p.recv_stream));
  XATTN_CUDA_CHECK(cudaStreamWaitEvent(join, p.recv_tail, 0));
}

void CopyEngineLinks::release_waits() {
  if (!region_ || !release_stream_) return;
  cudaSetDevice(device_);
  const auto& ops = cuda::stream_memops();
  // Far past anything enqueued, so every pending wait is met (a late write from a live peer is smaller).
  constexpr uint32_t kAhead = 1u << 30;
  for (int q = 0; q < world_; ++q) {
    if (!linked(q)) continue;
    ops.write(release_stream_, arrived(region_, q), uint32_t(peers_[q].received.load()) + kAhead);
    ops.write(release_stream_, credit(region_, q), uint32_t(peers_[q].sent.load()) + kAhead);
  }
}

void CopyEngineLinks::unlink_all() {
  cudaSetDevice(device_);
  // Streams stuck on a counter (a failed peer) would make the frees below wait forever: release them, and
  // leak the memory rather than hang if they still do not drain.
  bool idle = true;
  for (int attempt = 0; attempt < 2; ++attempt) {
    idle = true;
    for (int p = 0; p < world_; ++p)
      for (cudaStream_t s : {peers_[p].send_stream, peers_[p].recv_stream})
        if (s && cudaStreamQuery(s) == cudaErrorNotReady) idle = false;
    if (idle) break;
    release_waits();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  cudaGetLastError();
  for (int p = 0; p < world_; ++p) {
    Peer& peer = peers_[p];
    for (cudaStream_t s : {peer.send_stream, peer.recv_stream})
      if (s) cudaStreamDestroy(s);
    for (cudaEvent_t e : {peer.send_tail, peer.recv_tail})
      if (e) cudaEventDestroy(e);
    peer.send_stream = peer.recv_stream = nullptr;
    peer.send_tail = peer.recv_tail = nullptr;
    if (peer.base && idle) cudaIpcCloseMemHandle(peer.base);
    peer.base = nullptr;
  }
  if (release_stream_) cudaStreamDestroy(release_stream_);
  release_stream_ = nullptr;
  if (region_ && idle) cudaFree(region_);
  region_ = nullptr;
}

CopyEngineLinks::~CopyEngineLinks() { unlink_all(); }

}  // namespace xattn
