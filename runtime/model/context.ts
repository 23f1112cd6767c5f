// What the layer code runs against: the engine and its model ops, the attention call of this rank,
// a ledger of live tensor bytes (peak activation memory, on any backend) and a time profile.
import { shardOf, type DistCall, type Engine, type Tensor } from '../engine/engine.js';
import { bindNn, type Nn } from './nn.js';
import type { ModelShape } from './presets.js';

const BYTES: Record<string, number> = { float32: 4, bfloat16: 2, float16: 2, int32: 4 };

export function tensorBytes(t: Tensor): number {
  return t.shape.reduce((a, b) => a * b, 1) * (BYTES[t.dtype] ?? 0);
}

/** Counts the bytes of the tensors the model allocated and has not freed yet, and their peak. */
export class TensorLedger {
  live = 0;
  peak = 0;
  private sizes = new WeakMap<Tensor, number>();

  track<T extends Tensor>(t: T): T {
    const b = tensorBytes(t);
    this.sizes.set(t, b);
    this.live += b;
    this.peak = Math.max(this.peak, this.live);
    return t;
  }

  free(...ts: (Tensor | undefined)[]): void {
    for (const t of ts) {
      if (!t) continue;
      this.live -= this.sizes.get(t) ?? 0;
      this.sizes.delete(t);
      t.dispose();
    }
  }

  /** Hands a tensor over to another ledger (or to the caller) without freeing it. */
  untrack<T extends Tensor>(t: T): T {
    this.live -= this.sizes.get(t) ?? 0;
    this.sizes.delete(t);
    return t;
  }

  resetPeak(): void {
    this.peak = this.live;
  }
}

export type ProfileCategory = 'projection' | 'attention' | 'comm' | 'other';
export type CommOp = 'attention_forward' | 'attention_backward' | 'all_reduce';

/** Seconds per category and bytes/seconds per communication op, since the last reset. */
export class Profile {
  seconds: Record<ProfileCategory, number> = { projection: 0, attention: 0, comm: 0, other: 0 };
  comm: Record<CommOp, { bytes: number; seconds: number }> = {
    attention_forward: { bytes: 0, seconds: 0 },
    attention_backward: { bytes: 0, seconds: 0 },
    all_reduce: { bytes: 0, seconds: 0 },
  };

  async time<T>(cat: ProfileCategory, p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    const r = await p;
    this.seconds[cat] += (performance.now() - t0) / 1000;
    return r;
  }

  /** A communicating call: its wall time minus the time spent waiting on transfers counts as `cat`. */
  addComm(op: CommOp, cat: ProfileCategory, wallSeconds: number, bytes: number, waitSeconds: number): void {
    this.comm[op].bytes += bytes;
    this.comm[op].seconds += waitSeconds;
    this.seconds.comm += waitSeconds;
    this.seconds[cat] += Math.max(0, wallSeconds - waitSeconds);
  }

  add(o: Profile): void {
    for (const k of Object.keys(this.seconds) as ProfileCategory[]) this.seconds[k] += o.seconds[k];
    for (const k of Object.keys(this.comm) as CommOp[]) {
      this.comm[k].bytes += o.comm[k].bytes;
      this.comm[k].seconds += o.comm[k].seconds;
    }
  }

  reset(): void {
    const fresh = new Profile();
    this.seconds = fresh.seconds;
    this.comm = fresh.comm;
  }
}

export interface ModelContext {
  engine: Engine;
  nn: Nn;
  shape: ModelShape;
  call: DistCall;
  /** Local token counts of this rank. */
  lq: number;
  lkv: number;
  /** Store per-layer K/V/Q activations instead of re-projecting them in the backward. */
  storeActivations: boolean;
  ledger: TensorLedger;
  profile: Profile;
}

export function makeContext(
  engine: Engine,
  shape: ModelShape,
  o: { call: DistCall; rank: number; worldSize: number; recomputeKV: boolean },
): ModelContext {
  return {
    engine,
    nn: bindNn(engine),
    shape,
    call: o.call,
    lq: shardOf(o.call.lqTotal, o.worldSize, o.rank).length,
    lkv: shardOf(o.call.lkvTotal, o.worldSize, o.rank).length,
    storeActivations: !o.recomputeKV,
    ledger: new TensorLedger(),
    profile: new Profile(),
  };
}
