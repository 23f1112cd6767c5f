// A training step's FLOPs against the GEMMs layer.ts runs, listed one by one (2·m·n·k each), and the
// attention's 4·B·H·Lq·Lkv·D forward plus 2.5x that backward.
import { describe, expect, it } from 'vitest';
import { stepFlops } from '../../../runtime/model/flops.js';
import type { ModelShape } from '../../../runtime/model/presets.js';

const m: ModelShape = { layers: 3, heads: 8, kvHeads: 2, headDim: 16, textHidden: 96, visualHidden: 80 };
const w = { batch: 2, textTokens: 12, visualTokens: 40 };
const T = w.batch * w.textTokens, Tkv = w.batch * w.visualTokens, q = m.heads * m.headDim, kv = m.kvHeads * m.headDim;
const gemm = (mm: number, n: number, k: number) => 2 * mm * n * k;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const forward = { q: gemm(T, q, m.textHidden), k: gemm(Tkv, kv, m.visualHidden), v: gemm(Tkv, kv, m.visualHidden), o: gemm(T, m.textHidden, q) };
// Weight gradients of Wo, Wq, Wk, Wv; input gradients of the attention output and the normed x. The
// visual input's gradient (two GEMMs into dy) is not computed in training.
const backward = [gemm(m.textHidden, q, T), gemm(T, q, m.textHidden), gemm(q, m.textHidden, T), gemm(T, m.textHidden, q), gemm(kv, m.visualHidden, Tkv), gemm(kv, m.visualHidden, Tkv)];
const attention = 3.5 * 4 * w.batch * m.heads * w.textTokens * w.visualTokens * m.headDim;

describe('training step FLOPs', () => {
  it('count every GEMM the layers run and the attention, per layer', () => {
    const f = stepFlops(m, w, 'all');
    expect(f.projections).toBe(m.layers * (sum(Object.values(forward)) + sum(backward)));
    expect(f.attention).toBe(m.layers * attention);
    expect(f.model).toBe(f.projections + f.attention);
    expect(f.recompute).toBe(0);
  });

  it('count recomputation apart: every forward projection again, or all but V where V is kept', () => {
    expect(stepFlops(m, w, 'none').recompute).toBe(m.layers * sum(Object.values(forward)));
    expect(stepFlops(m, w, 'values').recompute).toBe(m.layers * (forward.q + forward.k + forward.o));
    expect(stepFlops(m, w, 'none').model).toBe(stepFlops(m, w, 'all').model);
  });
});
