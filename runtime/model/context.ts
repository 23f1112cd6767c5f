// What the layer code runs against: the engine and its model ops, the attention call of this rank,
// a ledger of live tensor bytes and a time profile.
import { shardOf, type DistCall, type Engine } from '../engine/engine.js';
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
  ledger: TensorLedger;
  profile: Profile;
}

export function makeContext(
  engine: Engine,
  shape: ModelShape,
  o: { call: DistCall; rank: number; worldSize: number; recomputeKV: boolean; keepValues?: boolean; exactProfile?: boolean },
): ModelContext {
  return {
    engine,
    nn: bindNn(engine),
    shape,
    call: o.call,
    lq: shardOf(o.call.lqTotal, o.worldSize, o.rank).length,
    lkv: shardOf(o.call.lkvTotal, o.worldSize, o.rank).length,
    keep: keptProjections(o.recomputeKV, o.keepValues ?? false),
    ledger: new TensorLedger(),
    profile: new Profile(o.exactProfile ? () => engine.synchronize() : undefined),
  };
}
