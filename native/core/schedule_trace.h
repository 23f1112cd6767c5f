// $XATTN_TRACE=<dir>: every distributed call appends a line to <dir>/trace-rank<r>.txt with the time (ms
// after the call's first mark) at which the compute stream passed each mark, after "gap": the stream's ms
// since the previous traced call's last mark. A jump right before a "got ..." mark is compute waiting for
// a transfer. Lines are written once the stream has passed them (nothing waits for the device, so queued
// calls stay queued), at the latest when the schedule is closed. For diagnosing schedules; off by default,
// and then a mark costs a branch (names and labels are only formatted when on).
#pragma once
#include <string>

#include "core/backend.h"
#include "core/schedule.h"

namespace xattn::sched {

// "B1 H32/8 d128 1024x65536": names a problem in trace lines.
std::string shape_of(const DistProblem& p);

bool trace_enabled();

// Waits for the stream and writes every filed call's line (where tracing is on; never throws).
void trace_flush(Backend& be, int rank);

class Trace {
 public:
  // `name()` gives the call's name; it runs only when tracing is on.
  template <typename Name>
  Trace(Backend& be, int rank, Name&& name) : be_(be), rank_(rank), on_(trace_enabled()) {
    if (!on_) return;
    call_ = name();
    be_.trace_close("");  // drop stale marks of a call that threw
    be_.trace_mark("start");
  }
  ~Trace();  // files the call's marks and writes the lines the stream has passed (never throws)
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;
  // Marks `what`, followed by `step` and `.chunk` where given ("got-q1.0").
  void operator()(const char* what, int step = -1, int chunk = -1) {
    if (on_) be_.trace_mark(label(what, step, chunk));
  }

 private:
  static std::string label(const char* what, int step, int chunk);
  Backend& be_;
  int rank_;
  std::string call_;
  bool on_;
};

}  // namespace xattn::sched
