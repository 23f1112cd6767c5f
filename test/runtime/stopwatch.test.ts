// The engine's device stopwatch (bench:gpu's timer): ms between the last two marks, in order with the ops
// queued between them.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../runtime/engine/engine.js';

const engine = Engine.create();
afterAll(() => engine.close());

describe('engine stopwatch', () => {
  it('needs two marks before a reading', async () => {
    await expect(engine.stopwatchMs()).rejects.toMatchObject({ code: 'XATTN_E_INVALID_ARGUMENT', message: /two marks/ });
    await engine.stopwatchMark();
    await expect(engine.stopwatchMs()).rejects.toThrow(/two marks/);
  });

  it('times the ops queued between its marks, not the time after them', async () => {
    const dims = { batch: 1, heads: 4, kvHeads: 4, headDim: 64, dtype: 'float32' as const };
    const call = { algorithm: 'lv-xattn' as const, dims, lqTotal: 256, lkvTotal: 4096 };
    const q = await engine.upload(new Float32Array(256 * 4 * 64).fill(0.01), [1, 256, 4, 64], 'float32');
    const k = await engine.upload(new Float32Array(4096 * 4 * 64).fill(0.02), [1, 4096, 4, 64], 'float32');
    const timeCalls = async (n: number) => {
      const t0 = performance.now();
      const marked = engine.stopwatchMark();
      const outs = await Promise.all(Array.from({ length: n }, () => engine.attentionForward(call, { q, k, v: k })));
      await marked;
      await engine.stopwatchMark();
      const wall = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 50)); // idle after the second mark: not on the stopwatch
      const ms = await engine.stopwatchMs();
      outs.forEach((f) => (f.o.dispose(), f.lse.dispose()));
      return { ms, wall };
    };
    // On CPU the ops run on the engine's thread between the marks: nearly all of the wall time, never more.
    for (const { ms, wall } of [await timeCalls(1), await timeCalls(4)]) {
      expect(ms).toBeLessThanOrEqual(wall);
      expect(ms).toBeGreaterThan(0.5 * wall);
    }
  });
});
