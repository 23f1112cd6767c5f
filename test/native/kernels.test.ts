// CPU attention kernels against the fp64 reference: every storage dtype, GQA ratios, odd sizes,
// several tiles, masks with a KV offset and rows that see nothing.
import { describe, expect, it } from 'vitest';

import { kernels, type AttnBlockOpts, type AttnDims, type StorageDType } from '../../runtime/native/kernels.js';
import { DTYPES, expectClose, f32, makeCase, randomMask, type Case } from './harness.js';
import { refBackward, refForward } from './reference.js';

const k = kernels();

function forward(c: Case) {
  return k.attnForward(c.dims, c.q.data, c.k.data, c.v.data, c.blk);
}

function backwardVsReference(c: Case) {
  const ref = refForward(c.dims, c.blk, c.q.values, c.k.values, c.v.values);
  const grads = refBackward(c.dims, c.blk, c.q.values, c.k.values, c.v.values, c.dout.values);
  const got = k.attnBackward(c.dims, c.q.data, c.k.data, c.v.data, c.dout.data, f32(ref.lse), f32(grads.drow), c.blk);
  return { ref, grads, got };
}

const shapes: Array<{ name: string; lq: number; lkv: number; headDim: number; masked: boolean }> = [
  { name: 'odd sizes, one tile', lq: 7, lkv: 33, headDim: 5, masked: false },
  { name: 'several q and kv tiles, masked, kvOffset 20', lq: 70, lkv: 150, headDim: 16, masked: true },
];

describe.each(DTYPES)('attention kernels, %s', (dtype: StorageDType) => {
  for (const group of [1, 2, 4]) {
    for (const s of shapes) {
      const dims: AttnDims = { batch: 2, heads: 4, kvHeads: 4 / group, headDim: s.headDim, dtype };
      const blk: AttnBlockOpts = s.masked
        ? { lq: s.lq, lkv: s.lkv, kvOffset: 20, mask: randomMask(2, s.lq, 20 + s.lkv + 10, 11 * group) }
        : { lq: s.lq, lkv: s.lkv };
      const seed = group * 100 + s.lq;

      it(`forward matches the reference (GQA ${group}, ${s.name})`, () => {
        const c = makeCase(dims, blk, seed);
        const ref = refForward(dims, blk, c.q.values, c.k.values, c.v.values);
        const got = forward(c);
        expectClose(got.o, ref.o, 'o');
        expectClose(got.lse, ref.lse, 'lse');
      });

      it(`backward matches the reference (GQA ${group}, ${s.name})`, () => {
        const { grads, got } = backwardVsReference(makeCase(dims, blk, seed + 1));
        expectClose(got.dq, grads.dq, 'dq');
        expectClose(got.dk, grads.dk, 'dk');
        expectClose(got.dv, grads.dv, 'dv');
      });
    }
  }

  it('uses an explicit softmax scale', () => {
    const dims: AttnDims = { batch: 1, heads: 2, kvHeads: 1, headDim: 8, scale: 0.9, dtype };
    const c = makeCase(dims, { lq: 5, lkv: 9 }, 5);
    const ref = refForward(dims, c.blk, c.q.values, c.k.values, c.v.values);
    expectClose(forward(c).lse, ref.lse, 'lse');
  });
});

describe('rows that see no key', () => {
  const dims: AttnDims = { batch: 1, heads: 2, kvHeads: 1, headDim: 4, dtype: 'bfloat16' };
  // Block covers global keys [10, 30). Rows: all visible, before the block, after it, empty, partial.
  const mask = new Int32Array([0, 100, 0, 10, 30, 40, 15, 15, 12, 14]);
  const blk: AttnBlockOpts = { lq: 5, lkv: 20, kvOffset: 10, mask };
  const empty = [1, 2, 3];

  it('give O = 0 and LSE = -inf in the forward', () => {
    const c = makeCase(dims, blk, 21);
    const got = forward(c);
    for (let h = 0; h < 2; h++)
      for (const i of empty) {
        expect(got.lse[h * 5 + i]).toBe(-Infinity);
        for (let x = 0; x < 4; x++) expect(got.o[(i * 2 + h) * 4 + x]).toBe(0);
      }
    expect(got.o.some(Number.isNaN)).toBe(false);
    const ref = refForward(dims, blk, c.q.values, c.k.values, c.v.values);
    expectClose(got.o, ref.o, 'o');
    expectClose(got.lse, ref.lse, 'lse');
  });

  it('get zero gradient and produce no NaN in the backward (LSE = -inf passed in)', () => {
    const c = makeCase(dims, blk, 22);
    const { grads, got } = backwardVsReference(c);
    for (const t of [got.dq, got.dk, got.dv]) expect(t.some(Number.isNaN)).toBe(false);
    for (let h = 0; h < 2; h++)
      for (const i of empty) for (let x = 0; x < 4; x++) expect(got.dq[(i * 2 + h) * 4 + x]).toBe(0);
    // Keys no row can see ([0, 2) and [14, 20) locally, except for row 0 which sees all) only get row 0's share.
    expectClose(got.dq, grads.dq, 'dq');
    expectClose(got.dk, grads.dk, 'dk');
    expectClose(got.dv, grads.dv, 'dv');
  });

  it('contribute nothing to the backward when their LSE is -inf, even without a mask', () => {
    const d: AttnDims = { ...dims, dtype: 'float32' };
    const c = makeCase(d, { lq: 5, lkv: 20 }, 24);
    const ref = refForward(d, c.blk, c.q.values, c.k.values, c.v.values);
    const lse = f32(ref.lse);
    const drow = new Float32Array(10).fill(0.5);
    const full = k.attnBackward(d, c.q.data, c.k.data, c.v.data, c.dout.data, lse, drow, c.blk);
    lse[2] = -Infinity; // head 0, query 2
    const got = k.attnBackward(d, c.q.data, c.k.data, c.v.data, c.dout.data, lse, drow, c.blk);
    for (const t of [got.dq, got.dk, got.dv]) expect(t.some(Number.isNaN)).toBe(false);
    for (let x = 0; x < 4; x++) expect(got.dq[(2 * 2 + 0) * 4 + x]).toBe(0);
    expect(got.dq[(2 * 2 + 1) * 4]).toBe(full.dq[(2 * 2 + 1) * 4]); // head 1 of the same query is untouched
  });

  it('include every row when the block is empty (lkv = 0)', () => {
    const c = makeCase({ ...dims, dtype: 'float32' }, { lq: 3, lkv: 0 }, 23);
    const got = forward(c);
    expect(Array.from(got.lse)).toEqual(new Array(6).fill(-Infinity));
    expect(got.o.every((x) => x === 0)).toBe(true);
  });
});

describe('rowDot', () => {
  it.each(DTYPES)('computes rowsum(dO * O) in %s', (dtype) => {
    const dims: AttnDims = { batch: 2, heads: 3, kvHeads: 1, headDim: 7, dtype };
    const c = makeCase(dims, { lq: 5, lkv: 1 }, 31);
    const got = k.rowDot(dims, 5, c.q.data, c.dout.data);
    const want = new Float64Array(2 * 3 * 5);
    for (let b = 0; b < 2; b++)
      for (let i = 0; i < 5; i++)
        for (let h = 0; h < 3; h++)
          for (let x = 0; x < 7; x++) want[(b * 3 + h) * 5 + i] += c.q.values[((b * 5 + i) * 3 + h) * 7 + x] * c.dout.values[((b * 5 + i) * 3 + h) * 7 + x];
    expectClose(got, want, 'drow');
  });
});
