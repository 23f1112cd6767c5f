// Validates the fp64 reference on its own: forward against hand-computable cases, backward against
// central finite differences of the scalar loss sum(O * G).
import { describe, expect, it } from 'vitest';

import { randomNormal, refBackward, refForward, rng, sizes, type RefBlock, type RefDims } from './reference.js';

const f64 = (a: Float32Array) => Float64Array.from(a);

describe('fp64 reference attention', () => {
  it('returns the single visible value row and its score as LSE', () => {
    const d: RefDims = { batch: 1, heads: 1, kvHeads: 1, headDim: 2, scale: 0.5 };
    const blk: RefBlock = { lq: 1, lkv: 3, mask: new Int32Array([1, 2]) };
    const q = new Float64Array([1, 2]);
    const k = new Float64Array([9, 9, 3, 4, 9, 9]);
    const v = new Float64Array([7, 7, -1, 5, 7, 7]);
    const { o, lse } = refForward(d, blk, q, k, v);
    expect(Array.from(o)).toEqual([-1, 5]);
    expect(lse[0]).toBeCloseTo(0.5 * (3 + 8), 12);
  });

  it('averages the values when all scores are equal, and gives O = 0, LSE = -inf with no visible key', () => {
    const d: RefDims = { batch: 1, heads: 2, kvHeads: 1, headDim: 1 };
    const blk: RefBlock = { lq: 2, lkv: 4, kvOffset: 10, mask: new Int32Array([10, 14, 0, 10]) };
    const q = new Float64Array([0, 0, 1, 1]); // row 0 scores all zero; row 1 sees nothing
    const k = new Float64Array([1, 2, 3, 4]);
    const v = new Float64Array([1, 2, 3, 6]);
    const { o, lse } = refForward(d, blk, q, k, v);
    expect(o[0]).toBeCloseTo(3, 12);
    expect(o[1]).toBeCloseTo(3, 12);
    expect(lse[0]).toBeCloseTo(Math.log(4), 12);
    expect([o[2], o[3], lse[1], lse[3]]).toEqual([0, 0, -Infinity, -Infinity]);
  });

  it('has gradients equal to central finite differences of sum(O * G)', () => {
    const d: RefDims = { batch: 2, heads: 4, kvHeads: 2, headDim: 3, scale: 0.7 };
    // Row ranges: full, partial, empty (begin = end), partial; per batch.
    const blk: RefBlock = { lq: 4, lkv: 5, kvOffset: 2, mask: new Int32Array([2, 7, 3, 5, 4, 4, 0, 4, 2, 7, 5, 7, 0, 9, 6, 7]) };
    const n = sizes(d, blk);
    const next = rng(7);
    const q = f64(randomNormal(n.q, next));
    const k = f64(randomNormal(n.kv, next));
    const v = f64(randomNormal(n.kv, next));
    const g = f64(randomNormal(n.q, next));
    const loss = () => refForward(d, blk, q, k, v).o.reduce((s, x, i) => s + x * g[i], 0);
    const grads = refBackward(d, blk, q, k, v, g);
    const eps = 1e-6;
    let checked = 0;
    for (const [x, dx] of [
      [q, grads.dq],
      [k, grads.dk],
      [v, grads.dv],
    ] as const) {
      for (let i = 0; i < x.length; i++) {
        const keep = x[i];
        x[i] = keep + eps;
        const up = loss();
        x[i] = keep - eps;
        const down = loss();
        x[i] = keep;
        expect(Math.abs(dx[i] - (up - down) / (2 * eps))).toBeLessThan(1e-7);
        checked += 1;
      }
    }
    expect(checked).toBe(n.q + 2 * n.kv); // every element of q, k and v was perturbed
    // The empty row (batch 0, query 2) gets no gradient at all.
    for (let h = 0; h < d.heads; h++)
      for (let x = 0; x < d.headDim; x++) expect(grads.dq[((0 * blk.lq + 2) * d.heads + h) * d.headDim + x]).toBe(0);
  });
});
