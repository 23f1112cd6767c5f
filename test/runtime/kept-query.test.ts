// LV-XAttn keeps the Q blocks a forward receives for the backward of the same Q tensor, for the last 8
// forwards, or as many as a call asks for (keptForwards), or exactly XATTN_LV_KEEP_Q
// (native/core/kept_queries.h). Forwards on tensors of the same values, then their backwards in reverse
// order, at P = 2 over TCP, against the same calls with keeping off: a backward leaves Q out while its
// forward's entry is kept; a forward with keepQuery: false keeps nothing. The gradients are the same bits
// either way (same values, same operation order).
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { DistCase } from '../fixtures/dist-case.js';
import type { KeptQueryReport } from '../fixtures/kept-query-worker.js';
import { spawnRanks } from '../fixtures/spawn-ranks.js';

const WORKER = fileURLToPath(new URL('../fixtures/kept-query-worker.ts', import.meta.url));
const CASE: DistCase = { dims: { batch: 1, heads: 4, kvHeads: 2, headDim: 16, dtype: 'float32' }, lq: 10, lkv: 37, masked: false, seed: 21 };
// Q bytes a rank sends in a backward without kept blocks at P = 2: its own block of 5 rows, once.
const Q_BYTES = 5 * 4 * 16 * 4;

const run = (env: Record<string, string>) => spawnRanks<KeptQueryReport>(WORKER, 2, { XATTN_TEST_CASE: JSON.stringify(CASE), ...env });

/** Checks each rank's backwards against the same calls with keeping off: bytes saved per tensor, same dQ. */
function expectSaved(runs: KeptQueryReport[], off: KeptQueryReport[], saved: number[], what: string) {
  for (const r of runs) {
    const base = off.find((o) => o.rank === r.rank)!;
    expect(base.bytesSent.map((b, i) => b - r.bytesSent[i]!), `${what}, rank ${r.rank}: bytes saved per backward`).toEqual(saved);
    expect(r.dq, `${what}, rank ${r.rank}: dQ of every backward`).toEqual(base.dq);
    for (const dq of r.dq) expect(dq, `${what}, rank ${r.rank}: the backwards agree`).toEqual(r.dq[0]);
    expect(r.dq[0]!.some((x) => x !== 0), `rank ${r.rank}: dQ is not all zero`).toBe(true);
  }
}

describe('kept Q blocks across forwards', () => {
  it('saves each backward its Q bytes while its entry is kept, and no more', async () => {
    const off = await run({ XATTN_LV_KEEP_Q: '0' });
    expectSaved(await run({ XATTN_LV_KEEP_Q: '8' }), off, [Q_BYTES, Q_BYTES], 'XATTN_LV_KEEP_Q=8');
    // the second forward's entry displaces the first's
    expectSaved(await run({ XATTN_LV_KEEP_Q: '1' }), off, [0, Q_BYTES], 'XATTN_LV_KEEP_Q=1');
    // a forward no backward is announced for keeps nothing, and displaces nothing
    expectSaved(await run({ XATTN_LV_KEEP_Q: '1', XATTN_TEST_KEEP_FIRST: '0' }), off, [0, Q_BYTES], 'keepQuery: false, then a kept forward');
    expectSaved(await run({ XATTN_TEST_KEEP_FIRST: '0' }), off, [0, Q_BYTES], 'keepQuery: false');
  }, 60_000);

  it('keeps the last 8 forwards by default, and as many as the calls ask for (unless XATTN_LV_KEEP_Q says)', async () => {
    const ten = { XATTN_TEST_FORWARDS: '10' };
    const off = await run({ ...ten, XATTN_LV_KEEP_Q: '0' });
    const lastEight = [0, 0, ...Array(8).fill(Q_BYTES)];
    expectSaved(await run(ten), off, lastEight, 'default');
    expectSaved(await run({ ...ten, XATTN_TEST_KEPT_FORWARDS: '10' }), off, Array(10).fill(Q_BYTES), 'keptForwards: 10');
    expectSaved(await run({ ...ten, XATTN_TEST_KEPT_FORWARDS: '10', XATTN_LV_KEEP_Q: '8' }), off, lastEight, 'keptForwards: 10, XATTN_LV_KEEP_Q=8');
  }, 90_000);
});
