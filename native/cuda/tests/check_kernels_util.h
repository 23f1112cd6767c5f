// Shared pieces of xattn_cuda_check (check_kernels*.cc): device buffers, random inputs rounded to a dtype,
// uploads and downloads, and the one-line report every comparison prints.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dtype.h"
#include "reference.h"

namespace xattn::check {

inline const double kInf = std::numeric_limits<double>::infinity();
extern int g_failures;  // failed cases and checks so far

// A device allocation freed with the buffer.
struct Buf {
  Backend& be;
  void* p = nullptr;
  Buf(Backend& b, size_t bytes) : be(b) { p = be.alloc(bytes); }
  ~Buf() { be.free(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  template <typename T> T* as() { return static_cast<T*>(p); }
};

// n normal samples times amp, rounded to dtype t: the exact doubles the reference sees.
std::vector<double> random_values(ref::Rng& rng, size_t n, DType t, double amp);
std::vector<uint8_t> to_bytes(const std::vector<double>& v, DType t);
void upload(Backend& be, void* dev, const std::vector<double>& v, DType t);
std::vector<double> download_f32(Backend& be, const float* dev, size_t n);
// n values stored in dtype t on the device, as doubles.
std::vector<double> download_as(Backend& be, const void* dev, size_t n, DType t);

// Prints one line; false when the error is over tol (relative L2, or max abs with use_abs) or not finite.
bool report(const std::string& what, const ref::Err& e, double tol, bool use_abs = false);

inline double tol_fwd(DType t) { return t == DType::BF16 ? 2e-2 : t == DType::F16 ? 4e-3 : 1e-4; }
inline double tol_bwd(DType t) { return t == DType::BF16 ? 3e-2 : t == DType::F16 ? 6e-3 : 1e-4; }

}  // namespace xattn::check
