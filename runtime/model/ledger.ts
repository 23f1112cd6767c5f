// Counts the bytes of the tensors the model allocated and has not freed, and their peak: activation
// memory on any backend (weights and optimizer state are not tracked).
import type { Tensor } from '../engine/engine.js';

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

  /** Frees each distinct tensor once (a tensor may be passed under two names). */
  free(...ts: (Tensor | undefined)[]): void {
    for (const t of new Set(ts)) {
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
