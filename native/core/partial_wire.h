// The wire format of LV-XAttn's travelling partial results (O, dQ) with PartialPrecision::Float16: each row
// (b, i, h) of D float32 values travels as float16 values times one float32 power-of-two scale, chosen so
// the row's largest |value| lands in [2^14, 2^15). Scaling by a power of two is exact, so the only
// rounding is float16's own: at most 2^-11 of each value (values under 2^-29 of the row's largest round
// to 2^-25 of it absolutely). A row of zeros (a block that saw no key) gets scale 1; inf and NaN travel
// as themselves with scale 1.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define XATTN_HOST_DEVICE __host__ __device__
#else
#define XATTN_HOST_DEVICE
#endif

namespace xattn {

// Auto is a request, not a wire format: LV-XAttn's plan resolves it per pass (lv_plan.h).
enum class PartialPrecision { Float32, Float16, Auto };

// A partial result that came home (rows [B, n, H, D] and its LSE [B, H, n]): float32, or float16 wire rows with
// a scale per row (below) where `wire` is set.
struct HomePartial {
  const float* o = nullptr;
  const uint16_t* wire = nullptr;
  const float* scale = nullptr;
  const float* lse = nullptr;
};

// The scale's exponent for a row whose largest |value| is `row_max`; never below float32's smallest
// subnormal power, so the scale is never 0. Shared by the CPU and CUDA backends.
XATTN_HOST_DEVICE inline int partial_wire_exponent(float row_max) {
  if (!(row_max > 0.f && row_max <= FLT_MAX)) return 0;  // zero, inf or NaN
  int e = 0;
  frexpf(row_max, &e);  // row_max = m * 2^e, m in [0.5, 1)
  return e - 15 < -149 ? -149 : e - 15;
}

}  // namespace xattn
