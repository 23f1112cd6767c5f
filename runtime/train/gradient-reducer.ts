// Sums gradients across ranks layer by layer as the backward produces them (DDP-style buckets). Over
// NCCL each layer's sum runs in the background while the backward of the layers before it computes;
// elsewhere (TCP, one rank) every gradient is summed at the end in one collective, as a single call would.
import type { Tensor } from '../engine/engine.js';
import type { AllReduceResult, Nn } from '../model/nn.js';

export class GradientReducer {
  private handles: number[] = [];
  private deferred: Tensor[] = [];
  private bytes = 0;

  constructor(private readonly nn: Nn) {}

  /** These gradients are final for this step: start their sum (or keep them for the end). */
  async add(ts: Tensor[]): Promise<void> {
    const p = await this.nn.allReducePost(ts);
    if (p.posted) {
      this.handles.push(p.handle);
      this.bytes += p.bytesSent;
    } else {
      this.deferred.push(...ts);
    }
  }

  /** Waits for the background sums, then sums what was kept and the host scalars in one collective. */
  async finish(extras: number[]): Promise<AllReduceResult> {
    for (const h of this.handles.splice(0)) await this.nn.allReduceWait(h);
    const r = await this.nn.allReduceSum(this.deferred.splice(0), extras);
    const bytesSent = r.bytesSent + this.bytes;
    this.bytes = 0;
    return { ...r, bytesSent };
  }
}
