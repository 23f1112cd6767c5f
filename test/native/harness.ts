// Shared setup for the kernel tests: seeded inputs rounded to the storage dtype, random range masks and
// a comparison that reports the worst error.
import { expect } from 'vitest';

import type { AttnBlockOpts, AttnDims, StorageDType } from '../../runtime/native/kernels.js';
import { randomNormal, rng, sizes } from './reference.js';
import { toStorage, type Stored } from './storage.js';

export const DTYPES: StorageDType[] = ['float32', 'bfloat16', 'float16'];

// The reference sees exactly the stored (rounded) inputs and the kernels accumulate in fp32 for every
// dtype, so one tolerance fits all dtypes: fp32 rounding over at most a few hundred terms is ~1e-6 of the
// tensor's largest magnitude (measured: <= 4e-7); 5e-6 leaves margin yet catches any wrong term or scale.
export const TOL = 5e-6;

export interface Case {
  dims: AttnDims;
  blk: AttnBlockOpts;
  q: Stored;
  k: Stored;
  v: Stored;
  dout: Stored;
}

export function makeCase(dims: AttnDims, blk: AttnBlockOpts, seed: number): Case {
  const n = sizes(dims, blk);
  const next = rng(seed);
  const make = (count: number) => toStorage(randomNormal(count, next), dims.dtype);
  return { dims, blk, q: make(n.q), k: make(n.kv), v: make(n.kv), dout: make(n.q) };
}

/**
 * Global [begin, end) per query row over keys [0, globalKv): mostly random ranges, plus every 5th row
 * empty (begin = end) and every 7th row seeing all keys.
 */
export function randomMask(batch: number, lq: number, globalKv: number, seed: number): Int32Array {
  const next = rng(seed);
  const mask = new Int32Array(batch * lq * 2);
  for (let r = 0; r < batch * lq; r++) {
    let begin = Math.floor(next() * globalKv);
    let end = begin + Math.floor(next() * (globalKv - begin + 1));
    if (r % 5 === 3) end = begin;
    if (r % 7 === 1) [begin, end] = [0, globalKv];
    mask[2 * r] = begin;
    mask[2 * r + 1] = end;
  }
  return mask;
}

/** Elementwise |actual - expected| <= tol * max|expected|; non-finite expected values must match exactly. */
export function expectClose(actual: Float32Array, expected: Float64Array, what: string, tol = TOL): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  let scale = 0;
  for (const e of expected) if (Number.isFinite(e)) scale = Math.max(scale, Math.abs(e));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i])) {
      expect(actual[i], `${what}[${i}]`).toBe(expected[i]);
      continue;
    }
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= worst)) [worst, worstAt] = [err, i]; // also catches NaN
  }
  expect(worst, `${what}: worst error at ${worstAt} (scale ${scale})`).toBeLessThanOrEqual(tol * Math.max(scale, 1e-30));
}

export const f32 = (a: Float64Array) => Float32Array.from(a);
