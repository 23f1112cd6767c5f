// Gradient check of the whole cross-attention stack: the native forward/backward (float32) against
// central differences of an independent float64 reference, with KV recomputation on and off.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, type DistCall, type DTypeName } from '../../../runtime/engine/engine.js';
import { makeContext } from '../../../runtime/model/context.js';
import { lossAndGrads } from '../../../runtime/model/objective.js';
import { ParamSet, paramSpecs, type ParamSpec } from '../../../runtime/model/params.js';
import type { ModelShape } from '../../../runtime/model/presets.js';
import { randn } from '../../../runtime/worker/random.js';
import { centralDifferences, refLoss, type RefProblem } from './reference.js';

const shape: ModelShape = { layers: 2, heads: 4, kvHeads: 2, headDim: 8, textHidden: 16, visualHidden: 12 };
const problem: RefProblem = { shape, batch: 2, lq: 5, lkv: 7, eps: 1e-5 };
const call: DistCall = {
  algorithm: 'lv-xattn',
  dims: { batch: problem.batch, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, dtype: 'float32' },
  lqTotal: problem.lq,
  lkvTotal: problem.lkv,
};
const T = problem.batch * problem.lq;
const N = T * shape.textHidden;

/** float32-representable values, so the native model and the float64 reference see the same inputs. */
const f32 = (a: Float32Array) => Float64Array.from(a);

function hostParams(specs: ParamSpec[]): Float64Array[] {
  return specs.map((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.role === 'gate') return Float64Array.of(Math.fround(s.layer === 0 ? 0.7 : -0.4));
    const r = randn(n, 100 + i);
    // Norm weights around 1 (not exactly 1, so their gradients matter); projections ~ 1/sqrt(fan_in).
    return f32(s.role.startsWith('w') ? r.map((v) => v / Math.sqrt(s.shape[1]!)) : r.map((v) => 1 + 0.3 * v));
  });
}

const specs = paramSpecs(shape);
const params64 = hostParams(specs);
const x64 = f32(randn(T * shape.textHidden, 1));
const y64 = f32(randn(problem.batch * problem.lkv * shape.visualHidden, 2));
const target64 = f32(randn(T * shape.textHidden, 3));
const loss = () => refLoss(problem, params64, x64, y64, target64);

// Float32 rounding in small dot products leaves <= 6e-7 of each tensor's largest gradient (measured);
// central differences of the float64 reference are accurate to ~1e-9. 1e-5 leaves a 15x margin, while
// any missing term or wrong factor is orders of magnitude above it.
const REL = 1e-5;

function expectClose(name: string, got: Float32Array, want: Float64Array, rel = REL): void {
  let scale = 0, worst = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(scale, `${name}: the reference gradient is all zero, the check would be vacuous`).toBeGreaterThan(1e-6);
  expect(worst / scale, `${name}: max |native - finite difference| / max |gradient|`).toBeLessThan(rel);
}

const engines: Engine[] = [];
afterAll(() => engines.forEach((e) => e.close()));

/** `stale`: the gradient buffers hold this value (not zeros) before the step, as they would after another. */
async function runNative(recomputeKV: boolean, dtype: DTypeName = 'float32', keepValues = false, visualGrad = true, stale = 0) {
  const engine = Engine.create();
  engines.push(engine);
  const ctx = makeContext(engine, shape, { call: { ...call, dims: { ...call.dims, dtype } }, rank: 0, worldSize: 1, recomputeKV, keepValues });
  const master = await ParamSet.fromHost(engine, specs, (_s, i) => Float32Array.from(params64[i]!));
  const { view: params } = await master.computeView(ctx.nn, dtype);
  const grads = await ParamSet.zerosLike(engine, specs);
  if (stale !== 0) await ctx.nn.fill(grads.tensors, stale);
  const up = (a: Float64Array, s: number[]) => engine.upload(Float32Array.from(a), s, 'float32');
  const x = await up(x64, [problem.batch, problem.lq, shape.textHidden]);
  const y = await engine.upload(Float32Array.from(y64), [problem.batch * problem.lkv, shape.visualHidden], dtype);
  const target = await up(target64, [problem.batch, problem.lq, shape.textHidden]);
  const r = await lossAndGrads(ctx, params, grads, { x, y, target }, N, { visualGrad });
  const out = {
    loss: r.sum / N,
    grads: await grads.download(),
    dx: (await r.dx.download()) as Float32Array,
    dy: r.dy && ((await r.dy.download()) as Float32Array),
  };
  ctx.ledger.free(r.dx, r.dy);
  return { ...out, leaked: ctx.ledger.live, peak: ctx.ledger.peak };
}

describe('cross-attention stack gradients', () => {
  // The trainer zeroes no gradient between steps: every layer's backward writes all of its own.
  for (const recomputeKV of [true, false]) {
    it(`writes every weight gradient, whatever the buffers held before (recomputeKV=${recomputeKV})`, async () => {
      const fresh = await runNative(recomputeKV, 'float32', false, false);
      for (const stale of [Number.NaN, 1e30]) {
        const r = await runNative(recomputeKV, 'float32', false, false, stale);
        specs.forEach((s, i) => expect(Array.from(r.grads[i]!), `${s.name} over buffers holding ${stale}`).toEqual(Array.from(fresh.grads[i]!)));
      }
    });
  }

  const fd = {
    params: params64.map((p) => centralDifferences(p, loss)),
    x: centralDifferences(x64, loss),
    y: centralDifferences(y64, loss),
  };

  for (const recomputeKV of [true, false]) {
    it(`matches finite differences of a float64 reference (recomputeKV=${recomputeKV})`, async () => {
      const r = await runNative(recomputeKV);
      expect(Math.abs(r.loss - loss()) / loss()).toBeLessThan(1e-5);
      specs.forEach((s, i) => expectClose(s.name, r.grads[i]!, fd.params[i]!));
      expectClose('dx', r.dx, fd.x);
      expectClose('dy (summed over layers)', r.dy!, fd.y);
      expect(r.leaked, 'every activation is freed after the backward').toBe(0);
    });
  }

  // Mixed precision: GEMM and attention inputs in bf16 (8 significant bits), float32 accumulation and
  // masters. Rounding y, the weights and the activations to bf16 moves the gradients by a few bf16
  // ulps (2^-8 = 4e-3) of their largest value; 3e-2 leaves margin, a wrong term is far above it.
  for (const recomputeKV of [true, false]) {
    it(`matches finite differences to bf16 precision with bf16 GEMM inputs (recomputeKV=${recomputeKV})`, async () => {
      const r = await runNative(recomputeKV, 'bfloat16');
      expect(Math.abs(r.loss - loss()) / loss()).toBeLessThan(3e-2);
      specs.forEach((s, i) => expectClose(s.name, r.grads[i]!, fd.params[i]!, 3e-2));
      expectClose('dx', r.dx, fd.x, 3e-2);
      expectClose('dy (summed over layers)', r.dy!, fd.y, 3e-2);
      expect(r.leaked, 'every activation is freed after the backward').toBe(0);
    });
  }

  it('matches finite differences when V is kept and only K is re-projected (keepValues)', async () => {
    const r = await runNative(true, 'float32', true);
    specs.forEach((s, i) => expectClose(s.name, r.grads[i]!, fd.params[i]!));
    expectClose('dx', r.dx, fd.x);
    expectClose('dy (summed over layers)', r.dy!, fd.y);
    expect(r.leaked, 'every activation is freed after the backward').toBe(0);
  });

  it('leaves the visual gradient out unless asked (training): the same weight gradients and dx, less memory', async () => {
    for (const recomputeKV of [true, false]) {
      const withDy = await runNative(recomputeKV);
      const without = await runNative(recomputeKV, 'float32', false, false);
      expect(without.dy).toBeUndefined();
      expect(without.loss).toBe(withDy.loss);
      without.grads.forEach((g, i) => expect(g, specs[i]!.name).toEqual(withDy.grads[i]));
      expect(without.dx).toEqual(withDy.dx);
      // dy is a float32 [batch x visual tokens, visualHidden] tensor held through the whole backward.
      expect(withDy.peak - without.peak).toBe(problem.batch * problem.lkv * shape.visualHidden * 4);
      expect(without.leaked).toBe(0);
    }
  });

  it('gives identical gradients with full, partial and no recomputation, and stores less the more it recomputes', async () => {
    const on = await runNative(true);
    const values = await runNative(true, 'float32', true);
    const off = await runNative(false);
    for (const other of [values, off]) {
      expect(on.loss).toBe(other.loss);
      on.grads.forEach((g, i) => expect(g).toEqual(other.grads[i]));
      expect(on.dy).toEqual(other.dy);
    }
    expect(on.peak).toBeLessThan(values.peak);
    expect(values.peak).toBeLessThan(off.peak);
  });
});
