#include "cuda/ce_links.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/hmac_sha256.h"
#include "core/piece_order.h"
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
  uint64_t slots;
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

long long env_int(const char* name, long long fallback, long long least, long long most) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  require(*end == 0 && n >= least && n <= most, ErrorCode::InvalidArgument,
          std::string(name) + " must be an integer in " + std::to_string(least) + ".." + std::to_string(most) +
              ", got '" + v + "'");
  return n;
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
  if (nccl_p2p_disabled()) {
    if (why) *why = "NCCL_P2P_DISABLE is set";
    return false;
  }
  return true;
}

bool CopyEngineLinks::nccl_p2p_disabled() { return env_off("NCCL_P2P_DISABLE", false); }

CopyEngineLinks::CopyEngineLinks(int rank, int world, int device, Gather gather)
    : rank_(rank),
      world_(world),
      device_(device),
      slot_bytes_(size_t(env_int("XATTN_CE_SLOT_BYTES", kDefaultSlotBytes, 256, 1ll << 32) + 255) / 256 * 256),
      slots_(int(env_int("XATTN_CE_SLOTS", 2, 2, 16))),
      peers_(new Peer[world]) {
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
  mine.slots = uint64_t(slots_);
  mine.host = host_identity();
  if (willing) {
    const size_t bytes = kCounterBytes + size_t(world) * slots_ * slot_bytes_;
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
    } else if (r.slot_bytes != slot_bytes_ || r.slots != uint64_t(slots_)) {
      why_ = "rank " + std::to_string(p) + " uses another XATTN_CE_SLOT_BYTES or XATTN_CE_SLOTS";
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
  return base + kCounterBytes + (size_t(src) * slots_ + (piece - 1) % slots_) * slot_bytes_;
}

void CopyEngineLinks::send_piece(Peer& p, int to, const char* src, size_t bytes) {
  const auto& ops = cuda::stream_memops();
  const uint64_t piece = p.sent.load() + 1;
  if (piece > uint64_t(slots_))  // the receiver has copied out what this slot held before
    check_memop(ops.wait_geq(p.send_stream, credit(region_, to), uint32_t(piece - uint64_t(slots_))), "cuStreamWaitValue32");
  XATTN_CUDA_CHECK(cudaMemcpyAsync(slot(p.base, rank_, piece), src, bytes, cudaMemcpyDefault, p.send_stream));
  check_memop(ops.write(p.send_stream, arrived(p.base, rank_), uint32_t(piece)), "cuStreamWriteValue32");
  p.sent = piece;
}

void CopyEngineLinks::recv_piece(Peer& p, int from, char* dst, size_t bytes) {
  const auto& ops = cuda::stream_memops();
  const uint64_t piece = p.received.load() + 1;
  check_memop(ops.wait_geq(p.recv_stream, arrived(region_, from), uint32_t(piece)), "cuStreamWaitValue32");
  XATTN_CUDA_CHECK(cudaMemcpyAsync(dst, slot(region_, from, piece), bytes, cudaMemcpyDefault, p.recv_stream));
  check_memop(ops.write(p.recv_stream, credit(p.base, rank_), uint32_t(piece)), "cuStreamWriteValue32");
  p.received = piece;
}

void CopyEngineLinks::post(const std::vector<Exchange>& batch, cudaEvent_t ready, cudaStream_t join) {
  struct Job {
    bool send;
    int peer;
    char* buf;
    size_t bytes;
  };
  std::vector<Job> jobs;
  std::vector<PieceJob> shape;
  std::vector<std::pair<cudaStream_t, cudaEvent_t>> used;  // each stream with its tail event
  auto add = [&](bool send, int peer, const void* buf, size_t bytes) {
    if (peer < 0 || bytes == 0 || !linked(peer)) return;
    jobs.push_back({send, peer, static_cast<char*>(const_cast<void*>(buf)), bytes});
    shape.push_back({send, peer, (bytes + slot_bytes_ - 1) / slot_bytes_});
    const Peer& p = peers_[peer];
    const auto stream = send ? std::make_pair(p.send_stream, p.send_tail) : std::make_pair(p.recv_stream, p.recv_tail);
    if (std::find(used.begin(), used.end(), stream) == used.end()) used.push_back(stream);
  };
  for (const auto& x : batch) {
    add(true, x.to, x.send, x.send_bytes);
    add(false, x.from, x.recv, x.recv_bytes);
  }
  for (const auto& [s, tail] : used) XATTN_CUDA_CHECK(cudaStreamWaitEvent(s, ready, 0));
  for (const PieceStep& step : piece_order(shape, slots_)) {
    const Job& j = jobs[step.job];
    const size_t off = step.piece * slot_bytes_, n = std::min(slot_bytes_, j.bytes - off);
    if (j.send) send_piece(peers_[j.peer], j.peer, j.buf + off, n);
    else recv_piece(peers_[j.peer], j.peer, j.buf + off, n);
  }
  for (const auto& [s, tail] : used) {
    XATTN_CUDA_CHECK(cudaEventRecord(tail, s));
    XATTN_CUDA_CHECK(cudaStreamWaitEvent(join, tail, 0));
  }
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
