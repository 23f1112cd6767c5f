#include "cuda/nccl_api.h"

#include "core/error.h"
#include "cuda/shared_library.h"

namespace xattn::nccl {
namespace {

Api load() {
  const SharedLibrary lib = open_shared_library({"NCCL", "XATTN_NCCL_LIB", {"libnccl.so.2"},
                                                 {"/nvidia/nccl/lib", "/nvidia/cu13/lib"}, {}, ErrorCode::Nccl});
  auto bind = [&](const char* sym, auto& fn, bool required = true) {
    bind_symbol(lib, "NCCL", sym, fn, required, ErrorCode::Nccl);
  };
  Api a{};
  a.path = lib.path;
  bind("ncclGetVersion", a.GetVersion);
  bind("ncclGetUniqueId", a.GetUniqueId);
  bind("ncclCommInitRank", a.CommInitRank);
  bind("ncclCommDestroy", a.CommDestroy);
  bind("ncclCommAbort", a.CommAbort);
  bind("ncclCommGetAsyncError", a.CommGetAsyncError);
  bind("ncclGetErrorString", a.GetErrorString);
  bind("ncclGetLastError", a.GetLastError, false);
  bind("ncclGroupStart", a.GroupStart);
  bind("ncclGroupEnd", a.GroupEnd);
  bind("ncclSend", a.Send);
  bind("ncclRecv", a.Recv);
  bind("ncclAllReduce", a.AllReduce);
  return a;
}

}  // namespace

const Api& api() { return load_once(load, ErrorCode::Nccl); }

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
