// LV-XAttn keeps the Q blocks a forward receives for the backward of the same Q tensor, at most
// XATTN_LV_KEEP_Q forwards (native/core/kept_queries.h). Two forwards on two tensors of the same values,
// then both backwards, at P = 2 over TCP, against the same calls with keeping off: with room for both,
// both backwards leave Q out; with room for one, the second forward's entry displaces the first, whose
// backward sends Q again. The gradients are the same bits either way (same values, same operation order).
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { DistCase } from '../fixtures/dist-case.js';
import type { KeptQueryReport } from '../fixtures/kept-query-worker.js';
import { spawnRanks } from '../fixtures/spawn-ranks.js';

const WORKER = fileURLToPath(new URL('../fixtures/kept-query-worker.ts', import.meta.url));
const CASE: DistCase = { dims: { batch: 1, heads: 4, kvHeads: 2, headDim: 16, dtype: 'float32' }, lq: 10, lkv: 37, masked: false, seed: 21 };
// Q bytes a rank sends in a backward without kept blocks at P = 2: its own block of 5 rows, once.
const Q_BYTES = 5 * 4 * 16 * 4;

const run = (keep: string) => spawnRanks<KeptQueryReport>(WORKER, 2, { XATTN_TEST_CASE: JSON.stringify(CASE), XATTN_LV_KEEP_Q: keep });

describe('kept Q blocks across two forwards', () => {
  it('saves each backward its Q bytes while its entry is kept, and no more', async () => {
    const off = await run('0');
    for (const [keep, saved] of [['8', [Q_BYTES, Q_BYTES]], ['1', [0, Q_BYTES]]] as const) {
      for (const r of await run(keep)) {
        const base = off.find((o) => o.rank === r.rank)!;
        expect(base.bytesSent.map((b, i) => b - r.bytesSent[i]!), `XATTN_LV_KEEP_Q=${keep} rank ${r.rank}: bytes saved`).toEqual(saved);
        expect(r.dq, `XATTN_LV_KEEP_Q=${keep} rank ${r.rank}: dQ of both backwards`).toEqual(base.dq);
        expect(r.dq[0], `rank ${r.rank}: the two backwards agree`).toEqual(r.dq[1]);
        expect(r.dq[0]!.some((x) => x !== 0), `rank ${r.rank}: dQ is not all zero`).toBe(true);
      }
    }
  }, 60_000);
});
