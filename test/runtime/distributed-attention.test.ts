// LV-XAttn and Ring Attention across P = 1..4 processes (TCP) equal exact attention: forward (O, LSE)
// and backward (dQ, dK, dV) against the independent fp64 reference, on ragged shards, GQA and masks
// with fully masked rows.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { refBackward, refForward } from '../native/reference.js';
import { decode } from '../native/storage.js';
import { globalCase, unshardRows, type DistCase } from '../fixtures/dist-case.js';
import { spawnRanks } from '../fixtures/spawn-ranks.js';

const WORKER = fileURLToPath(new URL('../fixtures/dist-attention-worker.ts', import.meta.url));

// Odd lengths so every P in 1..4 gives ragged shards (and a rank with no text row at P = 4).
const CASES: DistCase[] = [
  { dims: { batch: 2, heads: 4, kvHeads: 2, headDim: 16, dtype: 'float32' }, lq: 11, lkv: 37, masked: true, seed: 11 },
  { dims: { batch: 1, heads: 8, kvHeads: 1, headDim: 32, dtype: 'bfloat16' }, lq: 9, lkv: 50, masked: false, seed: 12 },
  { dims: { batch: 1, heads: 4, kvHeads: 4, headDim: 8, dtype: 'float16' }, lq: 3, lkv: 23, masked: true, seed: 13 },
];

// O is stored in the storage dtype, so it carries that dtype's rounding (half an ulp: 2^-9 bf16,
// 2^-12 fp16); LSE and gradients are float32, but gradients see D = rowsum(dO∘O) of the rounded O.
const TOL: Record<string, { o: number; lse: number; grad: number }> = {
  float32: { o: 2e-5, lse: 2e-5, grad: 2e-5 },
  bfloat16: { o: 4e-3, lse: 2e-5, grad: 1.5e-2 },
  float16: { o: 5e-4, lse: 2e-5, grad: 2e-3 },
};

function worstRelative(actual: Float64Array, expected: Float64Array): number {
  let scale = 0;
  for (const e of expected) if (Number.isFinite(e)) scale = Math.max(scale, Math.abs(e));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i])) {
      if (actual[i] !== expected[i]) return Infinity;
      continue;
    }
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= worst)) worst = err;
  }
  return worst / Math.max(scale, 1e-30);
}

type RankOut = { rank: number; results: Record<string, Record<string, number[]>>[] };

describe.each([1, 2, 3, 4])('P = %i ranks over TCP', (P) => {
  it('LV-XAttn and Ring equal fp64 attention, forward and backward', async () => {
    const ranks = (await spawnRanks<RankOut>(WORKER, P, { XATTN_TEST_CASES: JSON.stringify(CASES) })).sort((a, b) => a.rank - b.rank);
    CASES.forEach((c, ci) => {
      const { batch, heads, kvHeads, headDim, dtype } = c.dims;
      const g = globalCase(c);
      const blk = { lq: c.lq, lkv: c.lkv, mask: g.mask };
      const fwd = refForward(c.dims, blk, g.q.values, g.k.values, g.v.values);
      const bwd = refBackward(c.dims, blk, g.q.values, g.k.values, g.v.values, g.dout.values);
      const tol = TOL[dtype]!;
      for (const algo of ['lv-xattn', 'ring']) {
        const part = (name: string) => ranks.map((r) => r.results[ci]![algo]![name]!);
        const asValues = (xs: number[]) => (dtype === 'float32' ? xs : xs.map((b) => decode(b, dtype)));
        const o = unshardRows(part('o').map(asValues), batch, c.lq, heads * headDim);
        const lse = unshardRows(part('lse'), batch * heads, c.lq, 1);
        const dq = unshardRows(part('dq'), batch, c.lq, heads * headDim);
        const dk = unshardRows(part('dk'), batch, c.lkv, kvHeads * headDim);
        const dv = unshardRows(part('dv'), batch, c.lkv, kvHeads * headDim);
        const what = `case ${ci} (${dtype}, H${heads}/${kvHeads}, ${c.lq}x${c.lkv}${c.masked ? ', masked' : ''}) ${algo} P=${P}`;
        expect(worstRelative(o, fwd.o), `${what}: O`).toBeLessThanOrEqual(tol.o);
        expect(worstRelative(lse, fwd.lse), `${what}: LSE`).toBeLessThanOrEqual(tol.lse);
        expect(worstRelative(dq, bwd.dq), `${what}: dQ`).toBeLessThanOrEqual(tol.grad);
        expect(worstRelative(dk, bwd.dk), `${what}: dK`).toBeLessThanOrEqual(tol.grad);
        expect(worstRelative(dv, bwd.dv), `${what}: dV`).toBeLessThanOrEqual(tol.grad);
        if (c.masked) expect(lse.some((x) => x === -Infinity), `${what}: some rows are fully masked`).toBe(true);
      }
    });
  }, 120_000);
});
