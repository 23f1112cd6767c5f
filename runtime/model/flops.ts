// FLOPs of one training step of the whole stack (all ranks together): projections are GEMMs
// (2·m·n·k), attention is 4·B·H·Lq·Lkv·D forward and 2.5× that backward. "Model" FLOPs count the
// useful work (forward + backward); recomputation's extra projections are reported separately. A
// projection's backward is its weight gradient and its input's gradient (2x its forward), except for the
// K/V projections, whose input y is data in training: the step leaves its gradient out (stack.ts).
import { attentionFlops } from '../engine/engine.js';
import type { KeptProjections } from './context.js';
import type { ModelShape } from './presets.js';

export interface StepFlops {
  projections: number;
  attention: number;
  /** projections + attention: forward and backward. */
  model: number;
  /** The extra forward projections KV recomputation runs in the backward. */
  recompute: number;
}

export function stepFlops(m: ModelShape, w: { batch: number; textTokens: number; visualTokens: number }, keep: KeptProjections): StepFlops {
  const T = w.batch * w.textTokens, Tkv = w.batch * w.visualTokens;
  const q = m.heads * m.headDim, kv = m.kvHeads * m.headDim;
  const vProj = 2 * Tkv * m.visualHidden * kv;
  const projFwd = 2 * T * m.textHidden * q + 2 * vProj + 2 * T * q * m.textHidden;
  const attnFwd = attentionFlops({ batch: w.batch, heads: m.heads, headDim: m.headDim }, w.textTokens, w.visualTokens);
  const projections = m.layers * (3 * projFwd - 2 * vProj), attention = m.layers * 3.5 * attnFwd;
  const recompute = keep === 'all' ? 0 : m.layers * (projFwd - (keep === 'values' ? vProj : 0));
  return { projections, attention, model: projections + attention, recompute };
}
