// Portable SIMD for the CPU kernels through GCC/Clang vector extensions (no intrinsics, no -march):
// on baseline x86-64 one 8-lane op becomes two SSE ops. Hot functions are additionally compiled for
// x86-64-v3 (AVX2 + FMA) with XATTN_SIMD_CLONES and the loader picks the best version at run time, so
// one binary runs everywhere. Results are deterministic on a given machine (the same clone always runs).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(XATTN_NO_SIMD_CLONES)
#define XATTN_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define XATTN_SIMD_CLONES
#endif
#define XATTN_INLINE inline __attribute__((always_inline))

// Every helper is always inlined into its (possibly AVX2) caller, so GCC's psABI note about passing
// 32-byte vectors without AVX never applies; it is silenced for the kernel files that include this header.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace xattn::cpu::simd {

typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef uint32_t vu8 __attribute__((vector_size(32)));
typedef uint16_t vh8 __attribute__((vector_size(16)));

XATTN_INLINE vf8 load8(const float* p) {
  vf8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
XATTN_INLINE void store8(float* p, vf8 v) { std::memcpy(p, &v, sizeof v); }
XATTN_INLINE vf8 splat(float x) { return vf8{x, x, x, x, x, x, x, x}; }
XATTN_INLINE vi8 splat_i(int32_t x) { return vi8{x, x, x, x, x, x, x, x}; }
XATTN_INLINE vi8 load8_i32(const int32_t* p) {
  vi8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
XATTN_INLINE vu8 load8_u16(const uint16_t* p) {
  vh8 h;
  std::memcpy(&h, p, sizeof h);
  return __builtin_convertvector(h, vu8);
}
XATTN_INLINE float hsum(vf8 v) {  // fixed pairwise order
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// exp(x) to within ~1 ulp: x = n ln2 + r with |r| <= ln2/2, 2^n built in the exponent bits, e^r by its
// degree-7 Taylor polynomial (truncation < 1e-8 relative). Underflows to 0 below ln(FLT_MIN) (so -inf
// gives 0); NaN stays NaN.
XATTN_INLINE vf8 exp8(vf8 x) {
  const vf8 lo = splat(-87.33654475f), hi = splat(88.37626266f);
  vf8 xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const vf8 round_magic = splat(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
  const vf8 n = (xc * splat(1.44269504089f) + round_magic) - round_magic;
  vf8 r = xc - n * splat(0.693359375f);  // ln2 split in two so n * ln2_hi is exact
  r = r - n * splat(-2.12194440e-4f);
  vf8 p = splat(1.f / 5040);
  p = p * r + splat(1.f / 720);
  p = p * r + splat(1.f / 120);
  p = p * r + splat(1.f / 24);
  p = p * r + splat(1.f / 6);
  p = p * r + splat(0.5f);
  p = p * r + splat(1.f);
  p = p * r + splat(1.f);
  const vi8 bits = (__builtin_convertvector(n, vi8) + 127) << 23;
  const vf8 out = p * (vf8)bits;
  return x < lo ? splat(0.f) : out;
}

// float16 bits (in 32-bit lanes) to float32, exactly, without branches.
XATTN_INLINE vf8 f16_to_f32x8(vu8 h) {
  const vu8 sign = (h & 0x8000u) << 16;
  const vu8 exp = h & 0x7c00u;
  const vu8 shifted = (h & 0x7fffu) << 13;                      // exponent and mantissa in place
  vu8 bits = exp == 0x7c00u ? shifted + (224u << 23) : shifted + (112u << 23);  // inf/NaN : normal
  const vf8 sub = __builtin_convertvector(h & 0x3ffu, vf8) * splat(5.9604644775390625e-8f);  // m * 2^-24
  bits = exp == 0u ? (vu8)sub : bits;  // zero and subnormals
  const vu8 out = bits | sign;
  return (vf8)out;
}

XATTN_INLINE vf8 bf16_to_f32x8(vu8 h) {
  const vu8 out = h << 16;
  return (vf8)out;
}

}  // namespace xattn::cpu::simd
