// How LV-XAttn moves a travelling float32 partial result (the forward's O, the backward's dQ; rows of
// [B, n, H, D]) to the next rank: as computed, or, with PartialPrecision::Float16, packed to float16 with a
// power-of-two scale per row (partial_wire.h), which halves the bytes of each pass's heaviest transfer.
// The partial travels as one message a chunk either way.
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/row_chunks.h"
#include "core/schedule_internal.h"
#include "core/transport.h"

namespace xattn::sched {

// Where a partial lands: the accumulator slots 0/1 of the steps in between, or home at the owner.
enum class PartialSlot { Acc0 = 0, Acc1 = 1, Home = 2 };

class PartialLink {
 public:
  // `acc` lays out the travelling accumulator in chunk slots: part 0 the float32 partial, any further part
  // (the forward's LSE) travels with it as it is: in the same message as float32, or as a message of its
  // own beside the packed one (copying it into the wire would cost more than the message: a hop that has
  // to be short, over NVLink, goes as float32). `name` prefixes the wire buffers.
  PartialLink(Backend& be, DistAttention::Buffers& buf, const AttnDims& d, const SlotBundle& acc,
              PartialPrecision precision, const std::string& name)
      : be_(be), d_(d), acc_(acc), packed_(precision == PartialPrecision::Float16), rb_(d) {
    require(precision != PartialPrecision::Auto, ErrorCode::Internal, "the plan resolves partials before they travel");
    if (!packed_) return;
    const size_t B = d.batch;
    wire_ = {acc.slots, {{B, rb_.o16 / B}, {B * d.heads, 4}}};  // float16 rows, then a scale per row and head
    send_ = buf.get<char>(name + ".wire", wire_.bytes());
    for (int i = 0; i < 3; ++i) recv_[i] = buf.get<char>(name + ".wire" + std::to_string(i), wire_.bytes());
  }

  // Exchanges that send chunk c (x rows) of the accumulator `acc` to `next`, and receive chunk c of the next
  // one (y rows) from `prev` for the accumulator `acc_in`: straight into it, or, where packed, the partial
  // into wire buffers that arrived() unpacks. Packing is enqueued here, before the send.
  std::vector<Exchange> exchanges(int c, const void* acc, int64_t x, int next, PartialSlot into, void* acc_in, int64_t y,
                                  int prev) {
    if (!packed_)
      return {{at(acc, acc_, 0, c, x), acc_.message_bytes(x), next, at(acc_in, acc_, 0, c, y), acc_.message_bytes(y), prev}};
    be_.partial_to_wire(d_, x, static_cast<const float*>(at(acc, acc_, 0, c, x)), static_cast<uint16_t*>(at(send_, wire_, 0, c, x)),
                        static_cast<float*>(at(send_, wire_, 1, c, x)));
    std::vector<Exchange> batch{{at(send_, wire_, 0, c, x), wire_.message_bytes(x), next,
                                 at(recv_[static_cast<int>(into)], wire_, 0, c, y), wire_.message_bytes(y), prev}};
    for (size_t k = 1; k < acc_.parts.size(); ++k)
      batch.push_back({at(acc, acc_, k, c, x), acc_.part_bytes(k, x), next, at(acc_in, acc_, k, c, y), acc_.part_bytes(k, y), prev});
    return batch;
  }

  // Chunk c (x rows) as it came home into `acc_in` (where the exchange pointed it), without unpacking: for
  // Backend::merge_final, once its exchange is waited for.
  HomePartial home(int c, int64_t x, const void* acc_in) const {
    HomePartial p;
    p.lse = static_cast<const float*>(at(acc_in, acc_, 1, c, x));
    if (!packed_) {
      p.o = static_cast<const float*>(at(acc_in, acc_, 0, c, x));
      return p;
    }
    char* wire = recv_[static_cast<int>(PartialSlot::Home)];
    p.wire = static_cast<const uint16_t*>(at(wire, wire_, 0, c, x));
    p.scale = static_cast<const float*>(at(wire, wire_, 1, c, x));
    return p;
  }

  // Once the exchange that received chunk c (x rows) for `from` is waited for: that chunk, float32, in the
  // accumulator `acc_in` (where the exchange pointed it).
  void arrived(int c, PartialSlot from, int64_t x, void* acc_in) {
    if (!packed_) return;
    char* wire = recv_[static_cast<int>(from)];
    be_.partial_from_wire(d_, x, static_cast<const uint16_t*>(at(wire, wire_, 0, c, x)),
                          static_cast<const float*>(at(wire, wire_, 1, c, x)), static_cast<float*>(at(acc_in, acc_, 0, c, x)));
  }

 private:
  static void* at(const void* base, const SlotBundle& b, size_t k, int c, int64_t rows) {
    return const_cast<char*>(static_cast<const char*>(base)) + b.offset(k, c, rows);
  }

  Backend& be_;
  const AttnDims& d_;
  const SlotBundle acc_;
  SlotBundle wire_{acc_.slots, {}};  // where packed: the float16 partial and its scales
  const bool packed_;
  const RowBytes rb_;
  char* send_ = nullptr;
  char* recv_[3] = {};
};

}  // namespace xattn::sched
