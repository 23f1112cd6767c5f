// Splitting the keys into blocks, as the ring schedules do: forward partials merged by LSE, and backward
// passes on each block (with the global LSE) that add up to the full gradients.
import { describe, expect, it } from 'vitest';

import { kernels, type AttnBlockOpts, type AttnDims } from '../../runtime/native/kernels.js';
import { DTYPES, expectClose, f32, makeCase, type Case } from './harness.js';
import { refBackward, refForward } from './reference.js';
import type { Stored } from './storage.js';

const k = kernels();

/** Rows [from, to) of a K/V tensor [batch, lkv, kvHeads, headDim]. */
function kvRows(t: Stored, d: AttnDims, lkv: number, from: number, to: number) {
  const row = d.kvHeads * d.headDim;
  const parts = Array.from({ length: d.batch }, (_, b) => [b * lkv * row + from * row, b * lkv * row + to * row]);
  const take = <T extends Float32Array | Uint16Array | Float64Array>(a: T): T => {
    const out = new (a.constructor as new (n: number) => T)(d.batch * (to - from) * row);
    parts.forEach(([lo, hi], b) => out.set(a.subarray(lo, hi) as never, b * (to - from) * row));
    return out;
  };
  return { data: take(t.data), values: take(t.values) };
}

/** The forward partial of keys [from, to) of a case, as a rank holding that shard computes it. */
function shardForward(c: Case, from: number, to: number) {
  const blk: AttnBlockOpts = { ...c.blk, lkv: to - from, kvOffset: from };
  const kk = kvRows(c.k, c.dims, c.blk.lkv, from, to);
  const vv = kvRows(c.v, c.dims, c.blk.lkv, from, to);
  return { blk, kk, vv, ...k.attnForward(c.dims, c.q.data, kk.data, vv.data, blk) };
}

// Row ranges over 40 global keys split at 17: both halves, first only, second only, none, tiny.
const MASK = new Int32Array([0, 40, 2, 9, 20, 38, 5, 5, 16, 18, 0, 17, 17, 40, 39, 40]);

describe.each(DTYPES)('KV blocks, %s', (dtype) => {
  const dims: AttnDims = { batch: 2, heads: 4, kvHeads: 2, headDim: 6, dtype };
  const blk: AttnBlockOpts = { lq: 4, lkv: 40, mask: MASK };

  it('merging the two halves by LSE gives the full attention (either order), -inf rows stay O = 0', () => {
    const c = makeCase(dims, blk, 41);
    const ref = refForward(dims, blk, c.q.values, c.k.values, c.v.values);
    const orders: Array<[[number, number], [number, number]]> = [
      [[0, 17], [17, 40]],
      [[17, 40], [0, 17]],
    ];
    for (const [first, second] of orders) {
      const acc = shardForward(c, ...first);
      const part = shardForward(c, ...second);
      k.lseMerge(dims, 4, acc.o, acc.lse, part.o, part.lse);
      expect(acc.o.some(Number.isNaN)).toBe(false);
      expectClose(acc.o, ref.o, 'merged o');
      expectClose(acc.lse, ref.lse, 'merged lse');
    }
    // Batch 0, query 3 sees no key anywhere: still exactly zero and -inf after the merge.
    expect(ref.lse[3]).toBe(-Infinity);
  });

  it('backward passes on the two halves add up to the full gradients', () => {
    const c = makeCase(dims, blk, 42);
    const ref = refForward(dims, blk, c.q.values, c.k.values, c.v.values);
    const grads = refBackward(dims, blk, c.q.values, c.k.values, c.v.values, c.dout.values);
    const dq = new Float32Array(grads.dq.length);
    const halves = [
      [0, 17],
      [17, 40],
    ] as const;
    const dkParts = halves.map(([from, to]) => {
      const sh = shardForward(c, from, to);
      const g = k.attnBackward(dims, c.q.data, sh.kk.data, sh.vv.data, c.dout.data, f32(ref.lse), f32(grads.drow), sh.blk);
      g.dq.forEach((x, i) => (dq[i] += x));
      return { from, to, g };
    });
    expectClose(dq, grads.dq, 'dq (sum over blocks)');
    for (const { from, to, g } of dkParts) {
      const want = kvRows({ data: new Float32Array(grads.dk.length), values: grads.dk }, dims, 40, from, to).values;
      const wantV = kvRows({ data: new Float32Array(grads.dv.length), values: grads.dv }, dims, 40, from, to).values;
      expectClose(g.dk, want, `dk [${from}, ${to})`);
      expectClose(g.dv, wantV, `dv [${from}, ${to})`);
    }
  });
});

describe('lseMerge edge cases', () => {
  const dims: AttnDims = { batch: 1, heads: 1, kvHeads: 1, headDim: 2, dtype: 'float32' };
  const merge = (la: number, oa: number[], lb: number, ob: number[]) => {
    const accO = new Float32Array(oa);
    const accLse = new Float32Array([la]);
    k.lseMerge(dims, 1, accO, accLse, new Float32Array(ob), new Float32Array([lb]));
    return { o: Array.from(accO), lse: accLse[0] };
  };

  it('keeps O = 0 and LSE = -inf when both sides saw nothing', () => {
    expect(merge(-Infinity, [0, 0], -Infinity, [0, 0])).toEqual({ o: [0, 0], lse: -Infinity });
  });

  it('takes the side that saw something when the other is -inf', () => {
    expect(merge(-Infinity, [0, 0], 1.5, [3, -4])).toEqual({ o: [3, -4], lse: 1.5 });
    expect(merge(2.5, [1, 2], -Infinity, [0, 0])).toEqual({ o: [1, 2], lse: 2.5 });
  });

  it('stays finite and accurate for LSE far beyond exp overflow (~88)', () => {
    const lb = Math.fround(1000 + Math.log(3)); // what the float32 input really holds
    const got = merge(1000, [1, 0], lb, [0, 1]);
    const wa = 1 / (1 + Math.exp(lb - 1000));
    expect(Math.abs(got.lse - (lb + Math.log1p(Math.exp(1000 - lb))))).toBeLessThanOrEqual(2 ** -13); // 1 ulp at 1000
    expect(Math.abs(got.o[0] - wa)).toBeLessThan(1e-6);
    expect(Math.abs(got.o[1] - (1 - wa))).toBeLessThan(1e-6);
  });

  it('matches the reference when scores are large (scale 40: LSE > 88)', () => {
    const big: AttnDims = { batch: 1, heads: 2, kvHeads: 1, headDim: 8, scale: 40, dtype: 'float32' };
    const c = makeCase(big, { lq: 3, lkv: 20 }, 43);
    const ref = refForward(big, c.blk, c.q.values, c.k.values, c.v.values);
    expect(Math.max(...ref.lse)).toBeGreaterThan(88);
    const acc = shardForward(c, 0, 9);
    const part = shardForward(c, 9, 20);
    k.lseMerge(big, 3, acc.o, acc.lse, part.o, part.lse);
    expectClose(acc.o, ref.o, 'merged o');
    expectClose(acc.lse, ref.lse, 'merged lse');
  });
});
