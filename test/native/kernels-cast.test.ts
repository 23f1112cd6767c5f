// Storage dtype conversions against the independent TypeScript model (storage.ts): every bfloat16 and
// float16 bit pattern, round trips, ties to even, subnormals, overflow, infinities and NaN.
import { describe, expect, it } from 'vitest';

import { kernels } from '../../runtime/native/kernels.js';
import { rng } from './reference.js';
import { decode, encode, roundToFormat } from './storage.js';

const k = kernels();
const ALL_PATTERNS = Uint16Array.from({ length: 65536 }, (_, i) => i);
const isNaNBits = (bits: number, dtype: 'bfloat16' | 'float16') => Number.isNaN(decode(bits, dtype));

function expectBits(got: Uint16Array, inputs: ArrayLike<number>, dtype: 'bfloat16' | 'float16') {
  for (let i = 0; i < got.length; i++) {
    const want = encode(roundToFormat(inputs[i], dtype), dtype);
    if (Number.isNaN(inputs[i])) expect(isNaNBits(got[i], dtype), `NaN stays NaN`).toBe(true);
    else if (got[i] !== want) expect(`${inputs[i]} -> 0x${got[i].toString(16)}`).toBe(`${inputs[i]} -> 0x${want.toString(16)}`);
  }
}

describe.each(['bfloat16', 'float16'] as const)('%s casts', (dtype) => {
  it('decode every bit pattern exactly (castToF32)', () => {
    const got = k.castToF32(dtype, ALL_PATTERNS);
    for (let p = 0; p < 65536; p++) {
      const want = decode(p, dtype);
      if (Number.isNaN(want)) expect(Number.isNaN(got[p]), `pattern ${p}`).toBe(true);
      else if (!Object.is(got[p], want)) expect(`${p}: ${got[p]}`).toBe(`${p}: ${want}`);
    }
  });

  it('round-trip every non-NaN pattern bit for bit, and keep NaN a NaN', () => {
    const back = k.castFromF32(dtype, k.castToF32(dtype, ALL_PATTERNS));
    for (let p = 0; p < 65536; p++) {
      if (isNaNBits(p, dtype)) expect(isNaNBits(back[p], dtype), `pattern ${p}`).toBe(true);
      else if (back[p] !== p) expect(back[p]).toBe(p);
    }
  });

  it('round exact midpoints to the even neighbour (normals and subnormals)', () => {
    const mids: number[] = [];
    for (let p = 0; p < 0x7c00; p += 37) {
      const [lo, hi] = [decode(p, dtype), decode(p + 1, dtype)];
      if (Number.isFinite(hi)) mids.push((lo + hi) / 2, -(lo + hi) / 2);
    }
    const src = Float32Array.from(mids);
    expect(Array.from(src)).toEqual(mids); // midpoints are exact in float32
    const got = k.castFromF32(dtype, src);
    expectBits(got, src, dtype);
    // Spot check the rule itself: ties go to the pattern with an even last bit.
    for (let i = 0; i < got.length; i++) expect(got[i] & 1).toBe(0);
  });

  it('round random float32 values over the whole exponent range like the model', () => {
    const next = rng(dtype === 'float16' ? 16 : 32);
    const [lo, hi] = dtype === 'float16' ? [-27, 17] : [-140, 128];
    const src = Float32Array.from({ length: 20000 }, () => (next() < 0.5 ? -1 : 1) * 2 ** (lo + next() * (hi - lo)));
    expectBits(k.castFromF32(dtype, src), src, dtype);
  });

  it('handle zeros, infinities, NaN and overflow', () => {
    const src = Float32Array.from([0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45]);
    const got = k.castFromF32(dtype, src);
    expectBits(got, src, dtype);
    expect(got[1]).toBe(0x8000);
    expect([got[5], got[6]]).toEqual(dtype === 'float16' ? [0x7c00, 0xfc00] : [0x7f80, 0xff80]);
  });
});

describe('float16 boundaries', () => {
  it('maps the largest finite value, the overflow threshold and the subnormal steps exactly', () => {
    const src = Float32Array.from([65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -14, 2 ** -14 - 2 ** -24]);
    expect(Array.from(k.castFromF32('float16', src))).toEqual([0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002, 0x0400, 0x03ff]);
  });
});

describe('bfloat16 boundaries', () => {
  it('rounds to nearest even on the bit pattern', () => {
    const src = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1.0078125]);
    expect(Array.from(k.castFromF32('bfloat16', src))).toEqual([0x3f80, 0x3f82, 0x3f81, 0x3f81]);
  });
});

describe('float32 casts', () => {
  it('copy the bits unchanged', () => {
    const src = Float32Array.from([1.5, -0, NaN, Infinity, 1e-45, -3.4e38]);
    const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
    expect(bits(k.castFromF32('float32', src))).toEqual(bits(src));
    expect(bits(k.castToF32('float32', src))).toEqual(bits(src));
  });
});
