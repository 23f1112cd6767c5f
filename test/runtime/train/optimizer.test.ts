// The native AdamW step against the update rule written out here in float64 (Loshchilov & Hutter:
// decoupled weight decay, bias-corrected moments), over several steps with changing gradients.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../runtime/engine/engine.js';
import { bindNn } from '../../../runtime/model/nn.js';
import { randn } from '../../../runtime/worker/random.js';

const engines: Engine[] = [];
afterAll(() => engines.forEach((e) => e.close()));

describe('AdamW', () => {
  it('matches the float64 update rule, with and without weight decay', async () => {
    const engine = Engine.create();
    engines.push(engine);
    const nn = bindNn(engine);
    const n = 37, h = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8 };
    for (const wd of [0, 0.1]) {
      const p0 = randn(n, 1);
      const param = await engine.upload(p0, [n], 'float32');
      const m = await engine.empty([n], 'float32'), v = await engine.empty([n], 'float32');
      const ref = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
      for (let step = 1; step <= 4; step++) {
        const g = randn(n, 10 + step, step);
        const grad = await engine.upload(g, [n], 'float32');
        await nn.adamw([{ param, grad, m, v, weightDecay: wd }], { ...h, step });
        for (let i = 0; i < n; i++) {
          ref.p[i] *= 1 - h.lr * wd;
          ref.m[i] = h.beta1 * ref.m[i]! + (1 - h.beta1) * g[i]!;
          ref.v[i] = h.beta2 * ref.v[i]! + (1 - h.beta2) * g[i]! ** 2;
          const mhat = ref.m[i]! / (1 - h.beta1 ** step), vhat = ref.v[i]! / (1 - h.beta2 ** step);
          ref.p[i] -= (h.lr * mhat) / (Math.sqrt(vhat) + h.eps);
        }
      }
      const got = (await param.download()) as Float32Array;
      // Each step moves a weight by ~lr = 1e-2; float32 rounding of the state is ~1e-7.
      for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - ref.p[i]!)).toBeLessThan(2e-6);
      const moved = Math.max(...Array.from(got, (x, i) => Math.abs(x - p0[i]!)));
      expect(moved).toBeGreaterThan(0.02);
    }
  });
});
