// wgmma (sm_90a) wrappers: D[64 x N] (+)= A[64 x 16] * B[16 x N], fp32 accumulators in registers,
// 16-bit inputs. `ss`: A and B from shared memory (descriptors); `rs`: A from registers (the mma.sync A
// fragment layout, per warp of the warpgroup). TA/TB = 1 for an MN-major (transposed) operand in smem.
// Accumulator layout (per warp w of the warpgroup, lane = 4*g + t): d[4*i + e] is row 16*w + g + 8*(e>>1),
// column 8*i + 2*t + (e&1) -- the mma.sync C layout, one 16x8 block per i.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace xattn::cuda {

template <typename T, int N>
struct Wgmma;

#define XATTN_ACC8(i) \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define XATTN_ACC32 XATTN_ACC8(0), XATTN_ACC8(8), XATTN_ACC8(16), XATTN_ACC8(24)
#define XATTN_ACC64 XATTN_ACC32, XATTN_ACC8(32), XATTN_ACC8(40), XATTN_ACC8(48), XATTN_ACC8(56)
#define XATTN_REGS32                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define XATTN_REGS64                                                                                       \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "   \
  "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "   \
  "%62, %63}"
#define XATTN_REGS96 \
  "{" "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95" "}"
#define XATTN_ACC96 XATTN_ACC64, XATTN_ACC8(64), XATTN_ACC8(72), XATTN_ACC8(80), XATTN_ACC8(88)

// One specialisation per (type, N); NA = N / 2 accumulators per thread. The operand numbers after the
// accumulators are spelled out because inline PTX cannot compute them.
#define XATTN_WGMMA_SPEC(CT, TY, N, NA, REGS, ACC, SS_OPS, RS_OPS, SS_P, RS_P)                                \
  template <>                                                                                               \
  struct Wgmma<CT, N> {                                                                                     \
    template <int TA, int TB>                                                                               \
    static __device__ __forceinline__ void ss(float (&d)[NA], uint64_t da, uint64_t db, int acc) {         \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " SS_P ", 0;\n"                                       \
                   "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " REGS ", " SS_OPS ";\n}\n" \
                   : ACC                                                                                    \
                   : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB)                                          \
                   : "memory");                                                                             \
    }                                                                                                       \
    template <int TB>                                                                                       \
    static __device__ __forceinline__ void rs(float (&d)[NA], const uint32_t (&a)[4], uint64_t db, int acc) { \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " RS_P ", 0;\n"                                       \
                   "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " REGS ", " RS_OPS ";\n}\n" \
                   : ACC                                                                                    \
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc), "n"(TB)                \
                   : "memory");                                                                             \
    }                                                                                                       \
  };

#define XATTN_WGMMA_TYPE(CT, TY)                                                                       \
  XATTN_WGMMA_SPEC(CT, TY, 64, 32, XATTN_REGS32, XATTN_ACC32, "%32, %33, p, 1, 1, %35, %36",          \
                   "{%32, %33, %34, %35}, %36, p, 1, 1, %38", "%34", "%37")                           \
  XATTN_WGMMA_SPEC(CT, TY, 128, 64, XATTN_REGS64, XATTN_ACC64, "%64, %65, p, 1, 1, %67, %68",         \
                   "{%64, %65, %66, %67}, %68, p, 1, 1, %70", "%66", "%69")                           \
  XATTN_WGMMA_SPEC(CT, TY, 192, 96, XATTN_REGS96, XATTN_ACC96, "%96, %97, p, 1, 1, %99, %100",        \
                   "{%96, %97, %98, %99}, %100, p, 1, 1, %102", "%98", "%101")

XATTN_WGMMA_TYPE(__nv_bfloat16, "bf16")
XATTN_WGMMA_TYPE(__half, "f16")

#undef XATTN_WGMMA_TYPE
#undef XATTN_WGMMA_SPEC
#undef XATTN_REGS96
#undef XATTN_REGS64
#undef XATTN_REGS32
#undef XATTN_ACC96
#undef XATTN_ACC64
#undef XATTN_ACC32
#undef XATTN_ACC8

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Pins registers that an in-flight wgmma reads or writes: code touching them cannot move across this point,
// and their physical registers cannot be reused while the wgmma runs.
template <int N>
__device__ __forceinline__ void reg_fence(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void reg_fence(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(r[i][e])::"memory");
}

// Stores four 8x8 16-bit matrices, one register each in the mma.sync C layout (lane 4*g + t holds row g,
// columns 2t and 2t + 1); lanes 8j..8j+7 give the addresses of matrix j's eight rows.
__device__ __forceinline__ void stmatrix_x4(uint32_t row_saddr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(row_saddr), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Shared-memory matrix descriptor for a 128-byte-swizzled tile (PTX ISA "matrix descriptor"): start address,
// leading and stride byte offsets (all >> 4), layout type 1 = 128B swizzle. The tile base must be 1024-byte
// aligned; moving along K inside a swizzle atom is done by adding the plain byte offset to the start.
//   K-major  : rows of 128 bytes (64 elements of K), 8-row atoms; SBO = 1024 (next 8 rows), LBO unused.
//   MN-major : rows of 128 bytes (64 elements of M/N) indexed by K; SBO = 1024 (next 8 K rows),
//              LBO = byte distance to the next 64 elements of M/N.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr, uint32_t lbo_bytes) {
  return static_cast<uint64_t>((saddr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (static_cast<uint64_t>(1024u >> 4) << 32) | (1ull << 62);
}

// The descriptor of the tile `bytes` (a multiple of 16) past `desc`'s: the start-address field holds address >> 4
// in 14 bits, and shared addresses stay below 256 KB, so the add never carries out of it. One integer add per
// wgmma where rebuilding the descriptor from the address takes several.
__device__ __forceinline__ uint64_t desc_plus(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

}  // namespace xattn::cuda
