// How LV-XAttn moves a travelling float32 partial result (the forward's O, the backward's dQ; rows of
// [B, n, H, D]) to the next rank: as computed, or, with PartialPrecision::Float16, packed to float16 with a
// power-of-two scale per row (partial_wire.h), which halves the bytes of each pass's heaviest transfer.
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
  // `name` prefixes the wire buffers (one set per tensor that travels).
  PartialLink(Backend& be, DistAttention::Buffers& buf, const AttnDims& d, const ChunkSlots& slots,
              PartialPrecision precision, const std::string& name)
      : be_(be), d_(d), slots_(slots), packed_(precision == PartialPrecision::Float16), rb_(d) {
    require(precision != PartialPrecision::Auto, ErrorCode::Internal, "the plan resolves partials before they travel");
    if (!packed_) return;
    send_o_ = buf.get<uint16_t>(name + ".wire_o", slots.bytes(wire_o()));
    send_s_ = buf.get<float>(name + ".wire_s", slots.bytes(scale()));
    for (int i = 0; i < 3; ++i) {
      recv_o_[i] = buf.get<uint16_t>(name + ".wire_o" + std::to_string(i), slots.bytes(wire_o()));
      recv_s_[i] = buf.get<float>(name + ".wire_s" + std::to_string(i), slots.bytes(scale()));
    }
  }

  // Exchanges that send chunk c (x rows at `o`, in slot c of a float32 tensor) to `next`, and receive
  // chunk c of the next partial (y rows) from `prev` for `into`: straight into `o_in`, or, where packed,
  // into wire buffers that arrived() unpacks. Packing is enqueued here, before the send.
  std::vector<Exchange> exchanges(int c, const float* o, int64_t x, int next, PartialSlot into, float* o_in, int64_t y,
                                  int prev) {
    if (!packed_) return {{o, x * rb_.o32, next, o_in, y * rb_.o32, prev}};
    const int i = static_cast<int>(into);
    uint16_t* so = at(send_o_, wire_o(), c);
    float* ss = at(send_s_, scale(), c);
    be_.partial_to_wire(d_, x, o, so, ss);
    return {{so, x * rb_.o16, next, at(recv_o_[i], wire_o(), c), y * rb_.o16, prev},
            {ss, x * rb_.lse, next, at(recv_s_[i], scale(), c), y * rb_.lse, prev}};
  }

  // Once the exchange that received chunk c (x rows) for `from` is waited for: that chunk as float32 in
  // `o_in` (where the exchange pointed it).
  void arrived(int c, PartialSlot from, int64_t x, float* o_in) {
    if (!packed_) return;
    const int i = static_cast<int>(from);
    be_.partial_from_wire(d_, x, at(recv_o_[i], wire_o(), c), at(recv_s_[i], scale(), c), o_in);
  }

 private:
  RowTensor wire_o() const { return {static_cast<size_t>(d_.batch), rb_.o16 / d_.batch}; }
  RowTensor scale() const { return {static_cast<size_t>(d_.batch * d_.heads), 4}; }
  template <typename T>
  T* at(T* base, const RowTensor& t, int c) const {
    return reinterpret_cast<T*>(reinterpret_cast<char*>(base) + slots_.offset(t, c));
  }

  Backend& be_;
  const AttnDims& d_;
  const ChunkSlots& slots_;
  const bool packed_;
  const RowBytes rb_;
  uint16_t* send_o_ = nullptr;
  float* send_s_ = nullptr;
  uint16_t* recv_o_[3] = {};
  float* recv_s_[3] = {};
};

}  // namespace xattn::sched
