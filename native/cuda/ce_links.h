// Copy-engine transfers between ranks that share a host and can map each other's memory (NVLink or PCIe
// peer-to-peer). NCCL's send/recv run as kernels that hold SMs for as long as a transfer lasts, so
// attention beside them runs slower; a copy engine takes no SMs.
//
// Each rank exports one device region (cudaIpc) holding, for every peer, a few staging slots plus two
// counters: "arrived" (pieces that peer has put into my slots) and "credit" (my pieces that peer has
// copied out of its slots). A message goes in pieces of at most one slot:
//   sender:   wait credit >= n - slots (the slot is free), copy into the receiver's slot, bump arrived = n
//   receiver: wait arrived >= n, copy out of the slot, bump the sender's credit = n
// The waits and bumps are GPU stream operations (cuStreamWaitValue32 / cuStreamWriteValue32), so no host
// thread blocks on the GPU. Each peer has its own send and receive stream, and pieces between two ranks
// follow the post order on both sides (as NCCL's do). A batch queues its pieces interleaved
// (core/piece_order.h): a stream's queue is finite, and a host queuing every send piece first would block
// on a full queue of sends waiting for credits from receives it never queued.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/transport.h"

namespace xattn {

class CopyEngineLinks {
 public:
  // Sends `bytes` of this rank to every rank and fills world * bytes, in rank order (a blocking all-gather).
  using Gather = std::function<void(const void* mine, size_t bytes, void* all)>;

  // Collective over all ranks. Peers on another host, without peer access, or where either side turned
  // copy engines off (XATTN_COPY_ENGINE=0, NCCL_P2P_DISABLE=1) stay unlinked: the caller uses NCCL there.
  CopyEngineLinks(int rank, int world, int device, Gather gather);
  ~CopyEngineLinks();
  CopyEngineLinks(const CopyEngineLinks&) = delete;
  CopyEngineLinks& operator=(const CopyEngineLinks&) = delete;

  bool linked(int peer) const { return peer >= 0 && peer < world_ && peers_[peer].base != nullptr; }
  int linked_count() const;
  const std::string& why_unlinked() const { return why_; }  // for logs: why some peer is not linked

  // Enqueues the exchanges of a batch with linked peers (the others are left to the caller): they start
  // once `ready` (recorded on the compute stream) has passed, and `join` is made to wait for them.
  void post(const std::vector<Exchange>& batch, cudaEvent_t ready, cudaStream_t join);

  // After a failure (dead peer, timeout): lets every stream waiting on a counter go on, so the compute
  // stream drains instead of hanging. Safe to call from another thread.
  void release_waits();

  static bool enabled_by_env(std::string* why);
  static bool nccl_p2p_disabled();  // $NCCL_P2P_DISABLE is set: NCCL goes through host memory or the network

 private:
  struct Peer {
    char* base = nullptr;  // the peer's region, mapped here (null: not linked)
    cudaStream_t send_stream = nullptr, recv_stream = nullptr;
    cudaEvent_t send_tail = nullptr, recv_tail = nullptr;
    std::atomic<uint64_t> sent{0}, received{0};  // pieces enqueued so far in each direction
  };
  // Region layout, the same on every rank: counters first, then the slots of each source rank.
  uint32_t* arrived(char* base, int src) const { return reinterpret_cast<uint32_t*>(base) + src; }
  uint32_t* credit(char* base, int dst) const { return reinterpret_cast<uint32_t*>(base) + world_ + dst; }
  char* slot(char* base, int src, uint64_t piece) const;
  void send_piece(Peer& p, int to, const char* src, size_t bytes);
  void recv_piece(Peer& p, int from, char* dst, size_t bytes);
  void link_peers(const std::vector<uint8_t>& records, const Gather& gather);
  void unlink_all();

  int rank_, world_, device_;
  size_t slot_bytes_;  // XATTN_CE_SLOT_BYTES, 8 MiB by default
  int slots_;          // per peer, XATTN_CE_SLOTS, 2 by default
  char* region_ = nullptr;  // this rank's exported region
  std::unique_ptr<Peer[]> peers_;
  cudaStream_t release_stream_ = nullptr;
  std::string why_;
};

}  // namespace xattn
