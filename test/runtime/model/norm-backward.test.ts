// nn.rmsnormBackward writing its dx straight in a GEMM input dtype (the layer's dqPre and dkPre): the float32
// result rounded once, bit for bit, and the same dw; and a clear error where it would be accumulated into.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, type DTypeName } from '../../../runtime/engine/engine.js';
import { bindNn } from '../../../runtime/model/nn.js';
import { randn } from '../../../runtime/worker/random.js';

const engine = Engine.create();
const nn = bindNn(engine);
afterAll(() => engine.close());

const rows = 37, n = 24;
const up = (a: Float32Array, shape: number[]) => engine.upload(a, shape, 'float32');

async function backward(outDtype?: DTypeName) {
  const x = await up(randn(rows * n, 1), [rows, n]);
  const w = await up(randn(n, 2).map((v) => 1 + 0.3 * v), [n]);
  const dy = await up(randn(rows * n, 3), [rows, n]);
  const dw = await up(new Float32Array(n), [n]);
  const { rstd } = await nn.rmsnorm(x, w);
  const dx = await nn.rmsnormBackward(x, w, rstd, dy, dw, outDtype ? { outDtype } : {});
  return { x, w, rstd, dy, dw, dx };
}

describe('rmsnormBackward outDtype', () => {
  for (const dtype of ['bfloat16', 'float16'] as const) {
    it(`writes dx as the float32 dx rounded to ${dtype}, with the same dw`, async () => {
      const wide = await backward();
      const narrow = await backward(dtype);
      expect(narrow.dx.dtype).toBe(dtype);
      const rounded = await nn.cast(wide.dx, dtype);
      expect(await narrow.dx.download()).toEqual(await rounded.download());
      expect(await narrow.dw.download()).toEqual(await wide.dw.download());
    });
  }

  it('refuses outDtype where dx is accumulated into', async () => {
    const t = await backward();
    await expect(nn.rmsnormBackwardInto(t.dx, t.x, t.w, t.rstd, t.dy, t.dw, { outDtype: 'bfloat16' } as never)).rejects.toThrow(
      /outDtype is for a new dx, not one accumulated into/,
    );
  });
});
