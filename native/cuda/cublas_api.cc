#include "cuda/cublas_api.h"

#include "core/error.h"
#include "cuda/shared_library.h"

namespace xattn::cublas {
namespace {

Api load() {
  // nvidia-cublas (CUDA 13) installs into nvidia/cu13/lib, nvidia-cublas-cu12 into nvidia/cublas/lib;
  // libcublas.so.12 has the same C interface for the calls used here.
  const SharedLibrary lib =
      open_shared_library({"cuBLAS (needed for GEMMs on the CUDA backend)", "XATTN_CUBLAS_LIB",
                           {"libcublas.so.13", "libcublas.so.12"}, {"/nvidia/cu13/lib", "/nvidia/cublas/lib"},
                           {"/usr/local/cuda/lib64", "/usr/local/cuda-1[23]*/lib64"}, ErrorCode::Cuda});
  auto bind = [&](const char* sym, auto& fn, bool required = true) {
    bind_symbol(lib, "cuBLAS", sym, fn, required, ErrorCode::Cuda);
  };
  Api a{};
  a.path = lib.path;
  bind("cublasCreate_v2", a.Create);
  bind("cublasDestroy_v2", a.Destroy);
  bind("cublasGetVersion_v2", a.GetVersion);
  bind("cublasSetStream_v2", a.SetStream);
  bind("cublasSetWorkspace_v2", a.SetWorkspace);
  bind("cublasSetMathMode", a.SetMathMode);
  bind("cublasSetAtomicsMode", a.SetAtomicsMode);
  bind("cublasSetPointerMode_v2", a.SetPointerMode);
  bind("cublasGetStatusString", a.GetStatusString, false);
  bind("cublasGemmEx", a.GemmEx);
  return a;
}

}  // namespace

const Api& api() { return load_once(load, ErrorCode::Cuda); }

void check(int status, const char* what) {
  if (status == kSuccess) return;
  const Api& a = api();
  const char* text = a.GetStatusString ? a.GetStatusString(status) : nullptr;
  fail(ErrorCode::Cuda, std::string(what) + " failed: " + (text ? text : "cuBLAS status") + " (" +
                            std::to_string(status) + ", " + a.path + ")");
}

}  // namespace xattn::cublas
