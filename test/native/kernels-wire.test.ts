// The float16 wire form of LV-XAttn's partial O (native/core/partial_wire.h), checked against an
// independent model: each row's scale is a power of two that puts its largest |value| in [2^14, 2^15),
// the float16 bits are exactly the values divided by the scale rounded to nearest even (storage.ts), and
// the round trip loses at most 2^-11 of a value (2^-25 of the scale in float16's subnormal range).
import { describe, expect, it } from 'vitest';

import { kernels, type AttnDims } from '../../runtime/native/kernels.js';
import { randomNormal, rng } from './reference.js';
import { encode, roundToFormat } from './storage.js';

const k = kernels();
const dims: AttnDims = { batch: 2, heads: 3, kvHeads: 1, headDim: 40, dtype: 'bfloat16' };
const LQ = 4;
const D = dims.headDim;
const ROWS = dims.batch * LQ * dims.heads;

/** A row of each kind, (b, i, h) order: ordinary, huge, tiny, all zero, 40 decades wide, a power of two
 * at the top, one with inf, one with NaN; the rest ordinary. */
function partials(): Float32Array {
  const next = rng(7);
  const o = Float32Array.from(randomNormal(ROWS * D, next));
  const row = (r: number) => o.subarray(r * D, (r + 1) * D);
  row(1).forEach((x, c, a) => (a[c] = x * 1e30));
  row(2).forEach((x, c, a) => (a[c] = x * 1e-30));
  row(3).fill(0);
  row(4).forEach((x, c, a) => (a[c] = x * 10 ** -(c % 40)));
  row(5).set([-1024, 3, -0.5], 0);
  row(6)[7] = Infinity;
  row(7)[3] = NaN;
  return o;
}

/** Index of row (b, i, h) in the [B, H, lq] scale tensor; o rows are (b, i, h) in [B, lq, H, D]. */
const statIndex = (r: number) => {
  const h = r % dims.heads, i = Math.floor(r / dims.heads) % LQ, b = Math.floor(r / (dims.heads * LQ));
  return (b * dims.heads + h) * LQ + i;
};

describe('partial O on the wire as float16 with a per-row scale', () => {
  const o = partials();
  const { wire, scale } = k.partialToWire(dims, LQ, o);
  const back = k.partialFromWire(dims, LQ, wire, scale);

  it('scales each row by a power of two that puts its largest |value| in [2^14, 2^15)', () => {
    for (let r = 0; r < ROWS; r++) {
      const s = scale[statIndex(r)]!;
      expect(Number.isInteger(Math.log2(s)), `row ${r}: scale ${s} is a power of two`).toBe(true);
      const values = Array.from(o.subarray(r * D, (r + 1) * D));
      const max = Math.max(...values.map(Math.abs));
      if (r === 3 || r === 6 || r === 7) expect(s, `row ${r}: zero, inf or NaN rows travel unscaled`).toBe(1);
      else {
        expect(max / s, `row ${r}`).toBeGreaterThanOrEqual(2 ** 14);
        expect(max / s, `row ${r}`).toBeLessThan(2 ** 15);
      }
    }
  });

  it('sends exactly the scaled values rounded to float16', () => {
    for (let r = 0; r < ROWS; r++) {
      const s = scale[statIndex(r)]!;
      for (let c = 0; c < D; c++) {
        const want = encode(roundToFormat(o[r * D + c]! / s, 'float16'), 'float16');
        expect(wire[r * D + c], `row ${r} value ${c} (${o[r * D + c]})`).toBe(want);
      }
    }
  });

  it('brings each value back within 2^-11 of itself (2^-25 of the scale below float16 normals)', () => {
    for (let r = 0; r < ROWS; r++) {
      const s = scale[statIndex(r)]!;
      for (let c = 0; c < D; c++) {
        const x = o[r * D + c]!, y = back[r * D + c]!;
        if (!Number.isFinite(x)) {
          expect(Object.is(y, x) || (Number.isNaN(x) && Number.isNaN(y)), `row ${r} value ${c}: ${x} travels as itself`).toBe(true);
          continue;
        }
        expect(Math.abs(y - x), `row ${r} value ${c}: ${x} came back as ${y}`).toBeLessThanOrEqual(Math.max(2 ** -11 * Math.abs(x), 2 ** -25 * s));
      }
    }
    expect(Array.from(back.subarray(3 * D, 4 * D))).toEqual(new Array(D).fill(0));
  });

  it('rejects a wire tensor of the wrong size', () => {
    expect(() => k.partialFromWire(dims, LQ, wire.subarray(1), scale)).toThrow(/wire/);
    expect(() => k.partialToWire(dims, LQ, o.subarray(1))).toThrow(/\bo\b/);
  });
});
