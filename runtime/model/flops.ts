// FLOPs of one training step of the whole stack (all ranks together): projections are GEMMs
// (2·m·n·k), attention is 4·B·H·Lq·Lkv·D forward and 2.5× that backward. "Model" FLOPs count the
// useful work (forward + backward); recomputation's extra projections are reported separately.
import { attentionFlops } from '../engine/engine.js';
import type { ModelShape } from './presets.js';

export interface StepFlops {
  projections: number;
  attention: number;
  /** projections + attention: forward and backward. */
  model: number;
  /** The extra forward projections KV recomputation runs in the backward. */
  recompute: number;
}

export function stepFlops(m: ModelShape, w: { batch: number; textTokens: number; visualTokens: number }, recomputeKV: boolean): StepFlops {
  const T = w.batch * w.textTokens, Tkv = w.batch * w.visualTokens;
  const q = m.heads * m.headDim, kv = m.kvHeads * m.headDim;
  const projFwd = 2 * T * m.textHidden * q + 2 * 2 * Tkv * m.visualHidden * kv + 2 * T * q * m.textHidden;
  const attnFwd = attentionFlops({ batch: w.batch, heads: m.heads, headDim: m.headDim }, w.textTokens, w.visualTokens);
  const projections = m.layers * 3 * projFwd, attention = m.layers * 3.5 * attnFwd;
  return { projections, attention, model: projections + attention, recompute: recomputeKV ? m.layers * projFwd : 0 };
}
