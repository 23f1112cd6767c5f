// The order in which one batch of copy-engine transfers queues its pieces (cuda/ce_links). A send piece
// may wait on the GPU for the receiver to free its slot (the receiver's piece `slots` earlier), a receive
// piece for the sender's data; each stream's queue is finite, and the host blocks when it is full.
// Queuing every send piece first then deadlocks: both hosts block on sends that wait for receives
// neither has queued.
//
// Pieces between two ranks are numbered per peer and direction (the jobs to one peer take turns, a piece
// each). A send piece numbered n gets key n, a receive piece numbered m key m + slots - 1, and pieces
// are queued by key. What a piece waits for on another rank then always has a smaller key there (a send
// n waits for receive n - slots, key n - 1; a receive m for send m, key m), so on ranks that post the same
// batch shape every piece runs, whatever the queue depth.
#pragma once
#include <cstddef>
#include <vector>

namespace xattn {

struct PieceJob {
  bool send;
  int peer;
  size_t pieces;
};

struct PieceStep {
  size_t job;    // index into the jobs
  size_t piece;  // 0-based piece of that job
};

std::vector<PieceStep> piece_order(const std::vector<PieceJob>& jobs, int slots);

}  // namespace xattn
