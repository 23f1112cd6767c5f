#include "core/schedule_trace.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

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

Trace::~Trace() {
  if (!on_ || std::uncaught_exceptions() > 0) return;
  try {
    std::string line = call_;
    char buf[64];
    for (const auto& [label, ms] : be_.trace_take()) {
      std::snprintf(buf, sizeof buf, "%.3f", ms);
      line += "  " + label + "@" + buf;
    }
    const std::string path = std::string(trace_dir()) + "/trace-rank" + std::to_string(rank_) + ".txt";
    if (FILE* f = std::fopen(path.c_str(), "a")) {
      std::fprintf(f, "%s\n", line.c_str());
      std::fclose(f);
    }
  } catch (...) {
  }
}

}  // namespace xattn::sched
