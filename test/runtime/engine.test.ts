// The engine rejects bad inputs with coded errors naming the problem, and keeps working afterwards.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../runtime/engine/engine.js';

const engine = Engine.create();
afterAll(() => engine.close());

const dims = { batch: 1, heads: 4, kvHeads: 2, headDim: 8, dtype: 'float32' as const };
const call = { algorithm: 'lv-xattn' as const, dims, lqTotal: 3, lkvTotal: 5 };
const f32 = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i));

describe('engine input checks', () => {
  it('names a tensor whose shape does not match the call', async () => {
    const q = await engine.upload(f32(3 * 4 * 8), [1, 3, 4, 8], 'float32');
    const k = await engine.upload(f32(6 * 2 * 8), [1, 6, 2, 8], 'float32'); // 6 rows, call says 5
    expect(() => engine.attentionForward(call, { q, k, v: k })).toThrow(
      expect.objectContaining({ code: 'XATTN_E_SHAPE_MISMATCH', message: 'k is float32[1, 6, 2, 8], expected float32[1, 5, 2, 8]' }),
    );
  });

  it('rejects heads not divisible by kvHeads, a wrong dtype and unknown algorithms', async () => {
    const q = await engine.upload(f32(3 * 4 * 8), [1, 3, 4, 8], 'float32');
    const k = await engine.upload(f32(5 * 2 * 8), [1, 5, 2, 8], 'float32');
    expect(() => engine.attentionForward({ ...call, dims: { ...dims, kvHeads: 3 } }, { q, k, v: k })).toThrow(
      expect.objectContaining({ code: 'XATTN_E_INVALID_ARGUMENT', message: expect.stringMatching(/heads \(4\) must be divisible by kvHeads \(3\)/) }),
    );
    expect(() => engine.attentionForward({ ...call, dims: { ...dims, dtype: 'bfloat16' } }, { q, k, v: k })).toThrow(/q is float32\[1, 3, 4, 8\], expected bfloat16/);
    expect(() => engine.attentionForward({ ...call, algorithm: 'ulysses' as never }, { q, k, v: k })).toThrow(/unknown attention algorithm 'ulysses'/);
    expect(() => engine.attentionForward({ ...call, dims: { ...dims, dtype: 'float64' as never } }, { q, k, v: k })).toThrow(/unknown dtype 'float64'/);
    expect(() => engine.attentionForward({ ...call, partials: 'bfloat16' as never }, { q, k, v: k })).toThrow(/partials must be 'auto', 'float32' or 'float16', got 'bfloat16'/);
    expect(() => engine.attentionForward({ ...call, keptForwards: -1 }, { q, k, v: k })).toThrow(/keptForwards must be an integer in 0..1024, got -1/);
    expect(() => engine.attentionForward({ ...call, keptForwards: 2.5 }, { q, k, v: k })).toThrow(/keptForwards/);
  });

  it('rejects uploads whose array does not fit the shape or dtype, and disposed tensors', async () => {
    expect(() => engine.upload(f32(10), [1, 3, 4], 'float32')).toThrow(/array has 10 elements but the shape holds 12/);
    expect(() => engine.upload(new Int32Array(4), [4], 'bfloat16')).toThrow(/takes a Float32Array/);
    const q = await engine.upload(f32(3 * 4 * 8), [1, 3, 4, 8], 'float32');
    q.dispose();
    expect(() => engine.attentionForward(call, { q, k: q, v: q })).toThrow(/q was disposed/);
    expect(() => engine.attentionForward(call, { q: {} as never, k: q, v: q })).toThrow(/q must be a Tensor/);
  });

  it('still computes correctly after rejecting bad calls', async () => {
    const q = await engine.upload(f32(3 * 4 * 8), [1, 3, 4, 8], 'float32');
    const k = await engine.upload(f32(5 * 2 * 8), [1, 5, 2, 8], 'float32');
    const { o, lse } = await engine.attentionForward(call, { q, k, v: k });
    const l = (await lse.download()) as Float32Array;
    expect(l.every(Number.isFinite)).toBe(true);
    expect(o.shape).toEqual([1, 3, 4, 8]);
  });
});
