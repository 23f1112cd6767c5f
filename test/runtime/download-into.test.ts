// Tensor.downloadInto copies a tensor's bytes into memory the caller owns: a plain typed array or one
// over a SharedArrayBuffer (what the checkpoint writer hands to its hashing thread), and names bad targets.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../runtime/engine/engine.js';

const engine = Engine.create();
afterAll(() => engine.close());

describe('Tensor.downloadInto', () => {
  it('fills a SharedArrayBuffer-backed array and a plain one with the uploaded values', async () => {
    const values = new Float32Array(1000).map((_, i) => Math.cos(i) * 1e3);
    const t = await engine.upload(values, [10, 100], 'float32');
    const shared = new Float32Array(new SharedArrayBuffer(4000));
    await t.downloadInto(shared);
    expect(Array.from(shared)).toEqual(Array.from(values));
    const bytes = new Uint8Array(4000); // any view of the right byte length
    await t.downloadInto(bytes);
    expect(Array.from(new Float32Array(bytes.buffer))).toEqual(Array.from(values));
  });

  it('writes bf16 bits where download() would return them', async () => {
    const t = await engine.upload(new Float32Array([1, -2, 0.5, 3]), [4], 'bfloat16');
    const into = new Uint16Array(4);
    await t.downloadInto(into);
    expect(Array.from(into)).toEqual([0x3f80, 0xc000, 0x3f00, 0x4040]);
  });

  it('names a target of the wrong size, a non-array target and a disposed tensor', async () => {
    const t = await engine.upload(new Float32Array(6), [2, 3], 'float32');
    expect(() => t.downloadInto(new Float32Array(5))).toThrow(
      expect.objectContaining({ code: 'XATTN_E_SHAPE_MISMATCH', message: 'downloadInto: the target holds 20 bytes but the tensor has 24' }),
    );
    expect(() => t.downloadInto({} as never)).toThrow(/downloadInto\(target: TypedArray\)/);
    t.dispose();
    expect(() => t.downloadInto(new Float32Array(6))).toThrow(/disposed/);
  });
});
