#include "core/schedule_trace.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace xattn::sched {
namespace {

const char* trace_dir() {
  static const char* dir = std::getenv("XATTN_TRACE");
  return dir && *dir ? dir : nullptr;
}

}  // namespace

bool trace_enabled() { return trace_dir() != nullptr; }

std::string Trace::label(const char* what, int step, int chunk) {
  std::string s = what;
  if (step >= 0) s += std::to_string(step);
  if (chunk >= 0) s += "." + std::to_string(chunk);
  return s;
}

std::string shape_of(const DistProblem& p) {
  const AttnDims& d = p.dims;
  return "B" + std::to_string(d.batch) + " H" + std::to_string(d.heads) + "/" + std::to_string(d.kv_heads) + " d" +
         std::to_string(d.head_dim) + " " + std::to_string(p.lq_total) + "x" + std::to_string(p.lkv_total);
}

namespace {

void write_ready(Backend& be, int rank) {
  std::vector<TracedCall> calls = be.trace_ready();
  if (calls.empty()) return;
  const std::string path = std::string(trace_dir()) + "/trace-rank" + std::to_string(rank) + ".txt";
  static const bool made = [] {  // once: fopen below reports what matters
    std::error_code ignored;
    return std::filesystem::create_directories(trace_dir(), ignored);
  }();
  (void)made;
  FILE* f = std::fopen(path.c_str(), "a");
  if (!f) {  // said once: a trace that silently goes nowhere wastes a GPU run
    static bool told = false;
    if (!told) std::fprintf(stderr, "xattn: XATTN_TRACE: cannot write %s\n", path.c_str());
    told = true;
    return;
  }
  for (const TracedCall& c : calls) {
    std::fprintf(f, "%s  gap@%.3f", c.call.c_str(), c.gap_ms);
    for (const auto& [label, ms] : c.marks) std::fprintf(f, "  %s@%.3f", label.c_str(), ms);
    std::fputc('\n', f);
  }
  std::fclose(f);
}

}  // namespace

Trace::~Trace() {
  if (!on_) return;
  try {
    be_.trace_close(std::uncaught_exceptions() > 0 ? std::string() : std::move(call_));
    write_ready(be_, rank_);
  } catch (...) {
  }
}

void trace_flush(Backend& be, int rank) {
  if (!trace_enabled()) return;
  try {
    be.synchronize();
    write_ready(be, rank);
  } catch (...) {
  }
}

}  // namespace xattn::sched
