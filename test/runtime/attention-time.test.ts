// engine.attentionMs(): the time of the attention calls made with `timed` (device time on CUDA, where calls
// resolve once queued; the call's own time on the CPU engine), summed until read, then restarted.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../runtime/engine/engine.js';

const engine = Engine.create();
afterAll(() => engine.close());

const dims = { batch: 2, heads: 8, kvHeads: 2, headDim: 32, dtype: 'float32' as const };
const call = { algorithm: 'lv-xattn' as const, dims, lqTotal: 64, lkvTotal: 4096 };
const f32 = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i));

describe('attention time', () => {
  it('sums the timed calls only, and restarts at each reading', async () => {
    const q = await engine.upload(f32(2 * 64 * 8 * 32), [2, 64, 8, 32], 'float32');
    const k = await engine.upload(f32(2 * 4096 * 2 * 32), [2, 4096, 2, 32], 'float32');
    await engine.attentionMs(); // whatever came before
    const t0 = performance.now();
    const f = await engine.attentionForward({ ...call, timed: true }, { q, k, v: k });
    await engine.attentionBackward({ ...call, timed: true }, { q, k, v: k, o: f.o, lse: f.lse, dout: q });
    const wall = performance.now() - t0;
    const timed = await engine.attentionMs();
    expect(timed).toBeGreaterThan(0);
    expect(timed).toBeLessThanOrEqual(wall);
    expect(await engine.attentionMs()).toBe(0); // read: restarted
    await engine.attentionForward(call, { q, k, v: k }); // not timed
    expect(await engine.attentionMs()).toBe(0);
  });
});
