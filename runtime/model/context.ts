// What the layer code runs against: the engine and its model ops, the attention call of this rank,
// a ledger of live tensor bytes and a time profile.
import { shardOf, type DistCall, type Engine, type PassGathered, type PassPartials } from '../engine/engine.js';
import { TensorLedger } from './ledger.js';
import { bindNn, type Nn } from './nn.js';
import type { ModelShape } from './presets.js';
import { Profile } from './profile.js';

export type KeptProjections = 'all' | 'values' | 'none';

export function keptProjections(recomputeKV: boolean, keepValues: boolean): KeptProjections {
  return !recomputeKV ? 'all' : keepValues ? 'values' : 'none';
}

export interface ModelContext {
  engine: Engine;
  nn: Nn;
  shape: ModelShape;
  call: DistCall;
  /** Local token counts of this rank. */
  lq: number;
  lkv: number;
  /** What the forward keeps of each layer's projections for the backward: everything (no recomputation),
   * V only (the backward re-projects K and Q), or nothing (it re-projects K/V and Q). */
  keep: KeptProjections;
  /** A backward of each forward's Q follows and Q travels (LV-XAttn, several ranks): the engine keeps the
   * Q blocks a forward receives (ForwardInputs.keepQuery), and where Q is re-projected the layer still
   * hands the backward the forward's Q tensor, so Q does not travel again. Costs one Q per layer. */
  keepQuery: boolean;
  ledger: TensorLedger;
  profile: Profile;
  /** How the last attention calls sent LV-XAttn's partials, and whether they gathered its blocks (set by the
   * layers). */
  partials: Partial<PassPartials>;
  gathered: Partial<PassGathered>;
}

export function makeContext(
  engine: Engine,
  shape: ModelShape,
  o: { call: DistCall; rank: number; worldSize: number; recomputeKV: boolean; keepValues?: boolean; keepQuery?: boolean; exactProfile?: boolean },
): ModelContext {
  return {
    engine,
    nn: bindNn(engine),
    shape,
    call: o.call,
    lq: shardOf(o.call.lqTotal, o.worldSize, o.rank).length,
    lkv: shardOf(o.call.lkvTotal, o.worldSize, o.rank).length,
    keep: keptProjections(o.recomputeKV, o.keepValues ?? false),
    keepQuery: o.keepQuery ?? (o.call.algorithm === 'lv-xattn' && o.worldSize > 1),
    ledger: new TensorLedger(),
    profile: new Profile(o.exactProfile ? () => engine.synchronize() : undefined),
    partials: {},
    gathered: {},
  };
}
