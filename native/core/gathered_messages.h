// What gathered LV-XAttn (schedule_lv_gathered.cc) sends: each rank's block to every peer at once, and each
// visiting block's result straight home. A message has a fixed cost its bytes do not explain (row_chunks.h:
// SlotBundle), paid here for all P - 1 peers on the step's critical path, so the tensors that travel together
// go as one message a peer, laid one after the other in one chunk of a SlotBundle: the backward's inputs, and
// each result with its LSE. (The forward's Q lands in the kept blocks, so a mask travels beside it; the own
// block's first piece hides that hop.)
#pragma once
#include <string>
#include <vector>

#include "core/partial_wire.h"
#include "core/row_chunks.h"
#include "core/schedule_internal.h"
#include "core/schedule_lv_parts.h"
#include "core/transport.h"

namespace xattn::gathered {

// Peer k (1 .. P-1) of rank r: r sends its block to r+k and receives the block of r-k, the one ring step k
// would bring (kept Q blocks are indexed alike); results go back the other way. Each pair of ranks posts
// its exchanges in the same order of k, so the transports pair them up.
struct Peers {
  int world, rank;
  int to(int k) const { return sched::mod(rank + k, world); }    // where this rank's block goes at k
  int from(int k) const { return sched::mod(rank - k, world); }  // whose block comes in at k
};

// One named buffer per peer: `rows[k]` rows of `row_bytes` each.
inline std::vector<void*> per_peer(DistAttention::Buffers& buf, const std::string& name, const std::vector<int64_t>& rows,
                                   size_t row_bytes) {
  std::vector<void*> out;
  for (size_t k = 0; k < rows.size(); ++k) out.push_back(buf.get(name + std::to_string(k), rows[k] * row_bytes));
  return out;
}

inline std::vector<size_t> bytes_of(const std::vector<int64_t>& rows, size_t row_bytes) {
  std::vector<size_t> out;
  for (int64_t n : rows) out.push_back(n * row_bytes);
  return out;
}

// Exchanges, for every peer k, of this rank's `mine` (mine_rows rows) out against block k-1 of `theirs` in
// (their_rows[k-1] rows), `row_bytes` a row.
inline std::vector<Exchange> to_every_peer(const Peers& p, const void* mine, int64_t mine_rows, const std::vector<void*>& theirs,
                                           const std::vector<int64_t>& their_rows, size_t row_bytes) {
  std::vector<Exchange> batch;
  for (int k = 1; k < p.world; ++k)
    batch.push_back({mine, mine_rows * row_bytes, p.to(k), theirs[k - 1], their_rows[k - 1] * row_bytes, p.from(k)});
  return batch;
}

// Each visiting block's float32 result (O or dQ, [B, rows, H, D]; in the forward with its LSE [B, H, rows]) goes
// home as one message: [result | LSE] as it is, or [float16 result | scale per row | LSE] where the pass's
// partials are float16 (partial_wire.h). This rank's own results come back from every peer the same way.
class ResultsHome {
 public:
  ResultsHome(Backend& be, DistAttention::Buffers& buf, const AttnDims& d, PartialPrecision p, const std::string& name,
              const std::vector<int64_t>& out_rows, int64_t my_lq, bool with_lse)
      : be_(be), d_(d), out_rows_(out_rows), my_lq_(my_lq), packed_(p == PartialPrecision::Float16), with_lse_(with_lse) {
    const sched::RowBytes rb(d);
    const size_t B = d.batch;
    const RowTensor o32{B, rb.o32 / B}, o16{B, rb.o16 / B}, per_row{B * d.heads, 4};  // scales and LSE alike
    layout_.parts = packed_ ? std::vector<RowTensor>{o16, per_row} : std::vector<RowTensor>{o32};
    if (with_lse) layout_.parts.push_back(per_row);
    const size_t row = layout_.message_bytes(1);
    out_ = per_peer(buf, name + ".out", out_rows, row);
    home_ = per_peer(buf, name + ".home", std::vector<int64_t>(out_rows.size(), my_lq), row);
    if (packed_) staged_ = per_peer(buf, name + ".f32", out_rows, rb.o32);
  }

  // Where visiting block k's float32 result, and its LSE, are to be written before exchanges().
  float* result(size_t k) const { return static_cast<float*>(packed_ ? staged_[k] : out_[k]); }
  float* lse(size_t k) const { return with_lse_ ? part(static_cast<float*>(out_[k]), layout_.parts.size() - 1, out_rows_[k]) : nullptr; }

  // Packs every result where float16 and returns the exchanges that send each home and bring this rank's in.
  std::vector<Exchange> exchanges(const Peers& peers) {
    for (size_t k = 0; packed_ && k < out_.size(); ++k)
      be_.partial_to_wire(d_, out_rows_[k], result(k), static_cast<uint16_t*>(out_[k]), part(static_cast<float*>(out_[k]), 1, out_rows_[k]));
    std::vector<Exchange> batch;
    for (int k = 1; k < peers.world; ++k)
      batch.push_back({out_[k - 1], layout_.message_bytes(out_rows_[k - 1]), peers.from(k), home_[k - 1], layout_.message_bytes(my_lq_),
                       peers.to(k)});
    return batch;
  }

  // Once the exchanges are waited for: this rank's result from peer k as float32 (unpacked into `unpacked`,
  // my_lq rows, where it came as float16), its LSE, and both as they came (for Backend::merge_final).
  const float* home_result(size_t k, float* unpacked) const {
    if (!packed_) return static_cast<const float*>(home_[k]);
    const HomePartial p = home(k);
    be_.partial_from_wire(d_, my_lq_, p.wire, p.scale, unpacked);
    return unpacked;
  }
  const float* home_lse(size_t k) const {
    return with_lse_ ? part(static_cast<const float*>(home_[k]), layout_.parts.size() - 1, my_lq_) : nullptr;
  }
  HomePartial home(size_t k) const {
    HomePartial p;
    p.lse = home_lse(k);
    if (!packed_) {
      p.o = static_cast<const float*>(home_[k]);
      return p;
    }
    p.wire = static_cast<const uint16_t*>(home_[k]);
    p.scale = part(static_cast<const float*>(home_[k]), 1, my_lq_);
    return p;
  }

 private:
  template <typename T>
  T* part(T* bundle, size_t k, int64_t rows) const {
    return lv_parts::at_byte(bundle, layout_.offset(k, 0, rows));
  }

  Backend& be_;
  const AttnDims& d_;
  const std::vector<int64_t> out_rows_;
  const int64_t my_lq_;
  const bool packed_, with_lse_;
  SlotBundle layout_{ChunkSlots(1, 0), {}};  // one chunk: the parts' offsets for any row count
  std::vector<void*> out_, home_, staged_;
};

}  // namespace xattn::gathered
