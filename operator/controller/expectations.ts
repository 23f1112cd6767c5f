// Expectations, as client-go's ControllerExpectations: after creating or deleting pods a job's
// key is not acted on again until the informer has seen those changes (or a TTL passed), so a
// stale cache never makes the operator create a pod twice or mistake a new pod for a lost one.

interface Pending {
  adds: Set<string>;
  deletes: Set<string>;
  since: number;
}

export class Expectations {
  private readonly byKey = new Map<string, Pending>();

  constructor(
    private readonly ttlMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  expectCreations(key: string, podNames: string[]): void {
    const p = this.entry(key);
    for (const n of podNames) p.adds.add(n);
  }

  expectDeletions(key: string, podNames: string[]): void {
    const p = this.entry(key);
    for (const n of podNames) p.deletes.add(n);
  }

  creationObserved(key: string, podName: string): void {
    this.byKey.get(key)?.adds.delete(podName);
    this.prune(key);
  }

  deletionObserved(key: string, podName: string): void {
    this.byKey.get(key)?.deletes.delete(podName);
    this.prune(key);
  }

  /** True when nothing is pending for the key, or what is pending is older than the TTL. */
  satisfied(key: string): boolean {
    const p = this.byKey.get(key);
    if (!p) return true;
    if (this.now() - p.since >= this.ttlMs) {
      this.byKey.delete(key);
      return true;
    }
    return p.adds.size === 0 && p.deletes.size === 0;
  }

  pendingCount(key: string): number {
    const p = this.byKey.get(key);
    return p ? p.adds.size + p.deletes.size : 0;
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }

  private entry(key: string): Pending {
    let p = this.byKey.get(key);
    if (!p) {
      p = { adds: new Set(), deletes: new Set(), since: this.now() };
      this.byKey.set(key, p);
    } else p.since = this.now();
    return p;
  }

  private prune(key: string): void {
    const p = this.byKey.get(key);
    if (p && p.adds.size === 0 && p.deletes.size === 0) this.byKey.delete(key);
  }
}
