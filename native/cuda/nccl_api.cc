#include "cuda/nccl_api.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace xattn::nccl {
namespace {

// Where pip puts libnccl (nvidia-nccl-cu12 / -cu13 wheels), for machines whose loader path lacks it.
std::vector<std::string> wheel_candidates() {
  std::vector<std::string> roots = {"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                                    "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
                                    "/opt/conda/lib/python3*/site-packages"};
  for (const char* env : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = std::getenv(env)) roots.push_back(std::string(v) + "/lib/python3*/site-packages");
  if (const char* home = std::getenv("HOME")) roots.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  std::vector<std::string> out;
  for (const auto& root : roots) {
    for (const char* sub : {"/nvidia/nccl/lib/libnccl.so.2", "/nvidia/cu13/lib/libnccl.so.2"}) {
      glob_t g{};
      if (::glob((root + sub).c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
      globfree(&g);
    }
  }
  return out;
}

template <typename F>
void bind(void* h, const char* sym, F& fn, bool required, const std::string& path) {
  fn = reinterpret_cast<F>(dlsym(h, sym));
  if (!fn && required) fail(ErrorCode::Nccl, std::string("NCCL library ") + path + " lacks symbol " + sym);
}

Api load() {
  std::vector<std::string> tried;
  void* h = nullptr;
  std::string path;
  auto attempt = [&](const std::string& p) {
    if (h) return;
    h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      path = p;
    } else {
      const char* err = dlerror();
      tried.push_back(p + " (" + (err ? err : "not found") + ")");
    }
  };
  if (const char* env = std::getenv("XATTN_NCCL_LIB"); env && *env) {
    attempt(env);
  } else {
    attempt("libnccl.so.2");
    for (const auto& c : wheel_candidates()) attempt(c);
  }
  if (!h) {
    std::string msg = "cannot load NCCL; set XATTN_NCCL_LIB to libnccl.so.2. Tried:";
    for (const auto& t : tried) msg += " " + t + ";";
    fail(ErrorCode::Nccl, msg);
  }
  Api a{};
  a.path = path;
  bind(h, "ncclGetVersion", a.GetVersion, true, path);
  bind(h, "ncclGetUniqueId", a.GetUniqueId, true, path);
  bind(h, "ncclCommInitRank", a.CommInitRank, true, path);
  bind(h, "ncclCommDestroy", a.CommDestroy, true, path);
  bind(h, "ncclCommAbort", a.CommAbort, true, path);
  bind(h, "ncclCommGetAsyncError", a.CommGetAsyncError, true, path);
  bind(h, "ncclGetErrorString", a.GetErrorString, true, path);
  bind(h, "ncclGetLastError", a.GetLastError, false, path);
  bind(h, "ncclGroupStart", a.GroupStart, true, path);
  bind(h, "ncclGroupEnd", a.GroupEnd, true, path);
  bind(h, "ncclSend", a.Send, true, path);
  bind(h, "ncclRecv", a.Recv, true, path);
  bind(h, "ncclAllReduce", a.AllReduce, true, path);
  return a;  // the handle stays open for the life of the process
}

}  // namespace

const Api& api() {
  static std::once_flag once;
  static Api instance;
  static std::string error;
  std::call_once(once, [] {
    try {
      instance = load();
    } catch (const XattnError& e) {
      error = e.what();
    }
  });
  if (!error.empty()) fail(ErrorCode::Nccl, error);
  return instance;
}

void check(int r, const char* what, Comm comm) {
  if (r == kSuccess) return;
  const Api& a = api();
  std::string msg = std::string(what) + " failed: " + a.GetErrorString(r);
  if (comm && a.GetLastError) {
    const char* last = a.GetLastError(comm);
    if (last && *last) msg += std::string(" (") + last + ")";
  }
  fail(r == kRemoteError || r == kSystemError ? ErrorCode::PeerLost : ErrorCode::Nccl, msg);
}

}  // namespace xattn::nccl
