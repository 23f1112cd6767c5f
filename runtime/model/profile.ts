// Where a step's time goes (projections, attention, communication, other) and what each
// communication op moved.

export type ProfileCategory = 'projection' | 'attention' | 'comm' | 'other';
export type CommOp = 'attention_forward' | 'attention_backward' | 'all_reduce';

/** Seconds per category and bytes/seconds per communication op, since the last reset.
 * On CUDA an op resolves when it is queued, not when it has run, so its time lands on whichever later
 * op waits for the device. Given `settle` (engine.synchronize), every timed op waits for the device:
 * exact shares, at the price of the overlap between queueing and running. */
export class Profile {
  constructor(private readonly sync?: () => Promise<void>) {}

  seconds: Record<ProfileCategory, number> = { projection: 0, attention: 0, comm: 0, other: 0 };
  comm: Record<CommOp, { bytes: number; seconds: number }> = {
    attention_forward: { bytes: 0, seconds: 0 },
    attention_backward: { bytes: 0, seconds: 0 },
    all_reduce: { bytes: 0, seconds: 0 },
  };

  async time<T>(cat: ProfileCategory, p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    const r = await p;
    await this.settle();
    this.seconds[cat] += (performance.now() - t0) / 1000;
    return r;
  }

  /** Waits for queued device work when the profile is exact (call before reading a wall time). */
  async settle(): Promise<void> {
    if (this.sync) await this.sync();
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
