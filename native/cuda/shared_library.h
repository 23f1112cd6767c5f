// Finds and opens a run-time dependency (NCCL, cuBLAS) that the addon must not link against: an
// environment override, else each soname on the loader path, else the same names inside pip wheels
// and toolkit folders. The error lists every path tried.
#pragma once
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

namespace xattn {

struct SharedLibrary {
  void* handle = nullptr;  // stays open for the life of the process
  std::string path;
};

struct LibrarySearch {
  const char* what;                       // "NCCL", for messages
  const char* env_override;               // e.g. "XATTN_NCCL_LIB"
  std::vector<std::string> sonames;       // tried in order
  std::vector<std::string> wheel_subdirs; // under each Python site-packages, e.g. "/nvidia/nccl/lib"
  std::vector<std::string> extra_dirs;    // glob patterns, e.g. "/usr/local/cuda/lib64"
  ErrorCode code;
};

SharedLibrary open_shared_library(const LibrarySearch& s);

// Resolves one symbol; a required one that is missing is an error naming the library.
void* library_symbol(const SharedLibrary& lib, const char* what, const char* symbol, bool required, ErrorCode code);

template <typename F>
void bind_symbol(const SharedLibrary& lib, const char* what, const char* symbol, F& fn, bool required, ErrorCode code) {
  fn = reinterpret_cast<F>(library_symbol(lib, what, symbol, required, code));
}

// The function table made by `load` on first use; a failed load is remembered and reported on every call.
template <typename Api>
const Api& load_once(Api (*load)(), ErrorCode code) {
  static std::once_flag once;
  static Api instance;
  static std::string error;
  std::call_once(once, [load] {
    try {
      instance = load();
    } catch (const XattnError& e) {
      error = e.what();
    }
  });
  if (!error.empty()) fail(code, error);
  return instance;
}

}  // namespace xattn
