// How a backward block's per-row inputs (Q, dO, LSE, D, the mask) travel around the LV-XAttn ring: in
// groups, each group one message a chunk (row_chunks.h: SlotBundle) with a receive buffer for each of the
// two alternating steps, and the own block's inputs laid out alike for the first hop.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "core/schedule_lv_parts.h"

namespace xattn::lv_parts {

enum class BwdInput { Q, Dout, Lse, Drow, Mask };
constexpr size_t kBwdInputs = 5;
using BwdNaturals = std::array<const void*, kBwdInputs>;  // one tensor per BwdInput, natural layout

class BwdInputs {
  static constexpr const char* kNames[kBwdInputs] = {"q", "do", "l", "d", "m"};

 public:
  using Groups = std::vector<std::vector<BwdInput>>;
  static Groups together() { return {{BwdInput::Q, BwdInput::Dout, BwdInput::Lse, BwdInput::Drow, BwdInput::Mask}}; }
  static Groups apart() { return {{BwdInput::Q}, {BwdInput::Dout}, {BwdInput::Lse}, {BwdInput::Drow}, {BwdInput::Mask}}; }

  // `groups` lists each message's inputs; Q is left out where it does not travel (`q_travels`: the forward
  // did not keep it), the mask where there is none, and a group left empty sends nothing.
  BwdInputs(DistAttention::Buffers& buf, const AttnDims& d, const ChunkSlots& slots, const Groups& groups, bool q_travels,
            bool masked) {
    const sched::RowBytes rb(d);
    const size_t B = d.batch;
    const RowTensor kind[kBwdInputs] = {{B, rb.q / B}, {B, rb.q / B}, {B * d.heads, 4}, {B * d.heads, 4}, {B, rb.mask / B}};
    for (const auto& group : groups) {
      Message m{SlotBundle{slots, {}}, {}, {}, {}};
      for (BwdInput in : group) {
        if ((in == BwdInput::Q && !q_travels) || (in == BwdInput::Mask && !masked)) continue;
        m.inputs.push_back(in);
        m.b.parts.push_back(kind[static_cast<size_t>(in)]);
      }
      if (m.inputs.empty()) continue;
      // Named by what it carries, so a buffer keeps its size whether or not Q travels in a call.
      for (BwdInput in : m.inputs) m.name += kNames[static_cast<size_t>(in)];
      for (int s = 0; s < 2; ++s) m.recv[s] = buf.get<char>("lvb.in." + m.name + std::to_string(s), m.b.bytes());
      msgs_.push_back(std::move(m));
    }
  }

  // The own block's messages for the first hop (n rows), from its tensors in natural layout.
  std::vector<const char*> own(Backend& be, DistAttention::Buffers& buf, int64_t n, const BwdNaturals& natural) const {
    std::vector<const char*> out;
    for (const Message& m : msgs_) {
      std::vector<const void*> tensors;
      for (BwdInput in : m.inputs) tensors.push_back(natural[static_cast<size_t>(in)]);
      const bool copied = tensors.size() > 1 || m.b.slots.chunks > 1;
      void* bundled = copied ? buf.get("lvb.own." + m.name, m.b.bytes()) : nullptr;
      out.push_back(static_cast<const char*>(own_in_bundle(be, m.b, n, tensors, bundled)));
    }
    return out;
  }

  // Each message's receive buffer of step slot s (0/1).
  std::vector<const char*> received(int s) const {
    std::vector<const char*> out;
    for (const Message& m : msgs_) out.push_back(m.recv[s]);
    return out;
  }

  // Sends chunk c (x rows) of the messages at `from` to `next`, and receives chunk c (y rows) of the next
  // block's from `prev` into the receive buffers of step slot `into`.
  std::vector<Exchange> exchanges(int c, int64_t x, const std::vector<const char*>& from, int next, int into, int64_t y,
                                  int prev) const {
    std::vector<Exchange> batch;
    for (size_t i = 0; i < msgs_.size(); ++i) {
      const SlotBundle& b = msgs_[i].b;
      batch.push_back({from[i] + b.offset(0, c, x), b.message_bytes(x), next, msgs_[i].recv[into] + b.offset(0, c, y),
                       b.message_bytes(y), prev});
    }
    return batch;
  }

  // Chunk c (x rows) of the block received into step slot s; Q from `kept_q` where it did not travel.
  BwdRows rows(int s, int c, int64_t x, const void* kept_q) const {
    const auto at = [&](BwdInput in) -> const void* {
      for (const Message& m : msgs_)
        for (size_t k = 0; k < m.inputs.size(); ++k)
          if (m.inputs[k] == in) return m.recv[s] + m.b.offset(k, c, x);
      return nullptr;
    };
    const void* q = at(BwdInput::Q);
    return {q ? q : kept_q, at(BwdInput::Dout), static_cast<const float*>(at(BwdInput::Lse)),
            static_cast<const float*>(at(BwdInput::Drow)), static_cast<const int32_t*>(at(BwdInput::Mask))};
  }

 private:
  struct Message {
    SlotBundle b;
    std::vector<BwdInput> inputs;  // the input in each part of b
    char* recv[2];
    std::string name;  // its inputs, for its buffers' names
  };
  std::vector<Message> msgs_;
};

}  // namespace xattn::lv_parts
