// $XATTN_TRACE=<dir>: every distributed call appends a line to <dir>/trace-rank<r>.txt with the time (ms
// after the call's first mark) at which the compute stream passed each mark. A jump right before a
// "got ..." mark is compute waiting for a transfer. For diagnosing schedules; off by default, and then
// a mark costs a branch.
#pragma once
#include <string>

#include "core/backend.h"
#include "core/schedule.h"

namespace xattn::sched {

// "B1 H32/8 d128 1024x65536": names a problem in trace lines.
std::string shape_of(const DistProblem& p);

class Trace {
 public:
  Trace(Backend& be, int rank, std::string call);
  ~Trace();  // waits for the stream, then writes the line (never throws)
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;
  void operator()(const std::string& label) {
    if (on_) be_.trace_mark(label);
  }

 private:
  Backend& be_;
  int rank_;
  std::string call_;
  bool on_;
};

}  // namespace xattn::sched
