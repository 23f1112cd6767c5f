// How a row-major GemmArgs maps onto one column-major cublasGemmEx call (pure logic, no CUDA).
// cuBLAS needs A and B of one type and C of that type or float32: a mixed A/B pair is cast to float32 first
// (exact for bf16/fp16), and any other C goes through a float32 scratch that is rounded to C's dtype once at
// the end (as the CPU GEMM rounds once).
#pragma once
#include <cstdint>

#include "core/nn_ops.h"

namespace xattn::cuda::nn {

struct GemmPlan {
  DType in = DType::F32;  // the type of both operands as cuBLAS sees them
  bool cast_a = false, cast_b = false;  // operand cast to float32 first
  bool c_via_f32 = false;               // C computed in a float32 scratch, then rounded to c_dtype
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS's first operand is B, its
  // second is A, m and n swap, and each leading dimension is that operand's row-major row length.
  bool op1_t = false, op2_t = false;    // transpose flags of the first (B) and second (A) operand
  int64_t m = 0, n = 0, k = 0;          // cuBLAS's m (= n), n (= m), k
  int64_t ld1 = 1, ld2 = 1, ldc = 1;
};

inline GemmPlan plan_gemm(const GemmArgs& g) {
  GemmPlan p;
  p.in = g.a_dtype == g.b_dtype ? g.a_dtype : DType::F32;
  p.cast_a = g.a_dtype != p.in;
  p.cast_b = g.b_dtype != p.in;
  p.c_via_f32 = !(g.c_dtype == DType::F32 || g.c_dtype == p.in);
  p.op1_t = g.trans_b;
  p.op2_t = g.trans_a;
  p.m = g.n;
  p.n = g.m;
  p.k = g.k;
  p.ld1 = g.trans_b ? g.k : g.n;
  p.ld2 = g.trans_a ? g.m : g.k;
  p.ldc = g.n;
  return p;
}

}  // namespace xattn::cuda::nn
