// Lease-based leader election, after client-go's: a candidate takes the Lease only when its
// holder has not renewed it for a whole lease duration as *this* process observed it (so clocks
// need not agree), writes go through resourceVersion preconditions (a 409 means someone else won),
// and a leader that cannot renew within renewDeadline (< lease duration) steps down.

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseStore {
  get(): Promise<{ record: LeaseRecord; resourceVersion: string } | undefined>;
  /** 'conflict' when the Lease already exists. */
  create(record: LeaseRecord): Promise<'ok' | 'conflict'>;
  /** 'conflict' when the resourceVersion moved on. */
  update(record: LeaseRecord, resourceVersion: string): Promise<'ok' | 'conflict'>;
}

export interface ElectorOptions {
  store: LeaseStore;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onError?: (err: unknown) => void;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class LeaderElector {
  private observedRv = '';
  private observedAt = 0;
  private leading = false;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(private readonly o: ElectorOptions) {
    this.leaseMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryMs = o.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseMs)) throw new Error('leader election: renewDeadline must be shorter than the lease duration');
    if (!(this.retryMs < this.renewDeadlineMs)) throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? defaultSleep;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** One attempt to take or keep the Lease; true when we hold it afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const fresh: LeaseRecord = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    try {
      const cur = await this.o.store.get();
      if (!cur) {
        if ((await this.o.store.create(fresh)) === 'conflict') return false;
        this.observedAt = now;
        return true;
      }
      if (cur.resourceVersion !== this.observedRv) {
        this.observedRv = cur.resourceVersion;
        this.observedAt = now;
      }
      const holder = cur.record.holderIdentity ?? '';
      const mine = holder === this.o.identity;
      const heldFor = (cur.record.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
      if (holder && !mine && this.observedAt + heldFor > now) return false;
      const next: LeaseRecord = {
        ...fresh,
        acquireTime: mine ? cur.record.acquireTime ?? fresh.acquireTime : fresh.acquireTime,
        leaseTransitions: (cur.record.leaseTransitions ?? 0) + (mine ? 0 : 1),
      };
      if ((await this.o.store.update(next, cur.resourceVersion)) === 'conflict') return false;
      this.observedAt = now;
      return true;
    } catch (e) {
      this.o.onError?.(e);
      return false;
    }
  }

  /**
   * Campaigns until elected, calls onStarted, then renews until the signal aborts (returns
   * normally) or renewal fails for renewDeadline (calls onStopped, then returns).
   */
  async run(signal: AbortSignal, onStarted: () => void, onStopped: () => void): Promise<void> {
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) await this.sleep(this.retryMs, signal);
    if (signal.aborted) return;
    this.leading = true;
    onStarted();
    let lastRenew = this.now();
    while (!signal.aborted) {
      await this.sleep(this.retryMs, signal);
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) lastRenew = this.now();
      else if (this.now() - lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        onStopped();
        return;
      }
    }
  }

  /** Hands the Lease back on shutdown so a standby need not wait out the lease duration. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const cur = await this.o.store.get();
      if (!cur || cur.record.holderIdentity !== this.o.identity) return;
      const now = microTime(this.now());
      await this.o.store.update({ ...cur.record, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now }, cur.resourceVersion);
    } catch (e) {
      this.o.onError?.(e);
    }
  }
}
