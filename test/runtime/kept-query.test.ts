// LV-XAttn keeps the Q blocks a forward receives for the backward of the same Q tensor, at most
// XATTN_LV_KEEP_Q forwards (native/core/kept_queries.h). Two forwards on two tensors of the same values,
// then both backwards, at P = 2 over TCP: with room for both, neither backward sends Q; with room for one,
// the second forward's entry displaces the first, whose backward sends Q again. The gradients are the
// same bits either way (the same values, the same order of operations).
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { DistCase } from '../fixtures/dist-case.js';
import type { KeptQueryReport } from '../fixtures/kept-query-worker.js';
import { spawnRanks } from '../fixtures/spawn-ranks.js';

const WORKER = fileURLToPath(new URL('../fixtures/kept-query-worker.ts', import.meta.url));
const CASE: DistCase = { dims: { batch: 1, heads: 4, kvHeads: 2, headDim: 16, dtype: 'float32' }, lq: 10, lkv: 37, masked: false, seed: 21 };
// Q bytes a rank sends in a backward without kept blocks at P = 2: its own block of 5 rows, once.
const Q_BYTES = 5 * 4 * 16 * 4;

describe('kept Q blocks across two forwards', () => {
  it.each([
    ['8', [0, 0]],
    ['1', [Q_BYTES, 0]],
    ['0', [Q_BYTES, Q_BYTES]],
  ])('XATTN_LV_KEEP_Q=%s: Q bytes the two backwards send beyond the kept-Q minimum %j', async (keep, extra) => {
    const ranks = await spawnRanks<KeptQueryReport>(WORKER, 2, { XATTN_TEST_CASE: JSON.stringify(CASE), XATTN_LV_KEEP_Q: keep });
    const minimum = await spawnRanks<KeptQueryReport>(WORKER, 2, { XATTN_TEST_CASE: JSON.stringify(CASE), XATTN_LV_KEEP_Q: '8' });
    for (const r of ranks) {
      const base = minimum.find((m) => m.rank === r.rank)!.bytesSent;
      expect(r.bytesSent.map((b, i) => b - base[i]!), `rank ${r.rank}`).toEqual(extra);
      expect(r.dq[0], `rank ${r.rank}: dQ of both backwards`).toEqual(r.dq[1]);
      expect(r.dq[0]!.some((x) => x !== 0), `rank ${r.rank}: dQ is not all zero`).toBe(true);
    }
  }, 60_000);
});
