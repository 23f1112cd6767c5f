import { describe, expect, it } from 'vitest';
import { LeaderElector, microTime, type LeaseRecord, type LeaseStore } from '../../operator/controller/leader.js';

/** An in-memory Lease with resourceVersion preconditions, like the API server's. */
class MemoryLease implements LeaseStore {
  record?: LeaseRecord;
  rv = 0;
  down = false;
  async get() {
    if (this.down) throw new Error('connection refused');
    return this.record ? { record: { ...this.record }, resourceVersion: String(this.rv) } : undefined;
  }
  async create(r: LeaseRecord) {
    if (this.down) throw new Error('connection refused');
    if (this.record) return 'conflict' as const;
    this.record = { ...r };
    this.rv++;
    return 'ok' as const;
  }
  async update(r: LeaseRecord, rv: string) {
    if (this.down) throw new Error('connection refused');
    if (rv !== String(this.rv)) return 'conflict' as const;
    this.record = { ...r };
    this.rv++;
    return 'ok' as const;
  }
}

function elector(store: LeaseStore, identity: string, clock: { t: number }) {
  return new LeaderElector({ store, identity, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, now: () => clock.t });
}

describe('LeaderElector', () => {
  it('lets exactly one of two candidates hold the lease', async () => {
    const store = new MemoryLease();
    const clock = { t: 0 };
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.t += 2000;
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    expect(store.record).toMatchObject({ holderIdentity: 'a', leaseTransitions: 0, leaseDurationSeconds: 15 });
  });

  it('takes over only after the holder has been silent for a lease duration, as the candidate observed it', async () => {
    const store = new MemoryLease();
    const clock = { t: 0 };
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    await a.tryAcquireOrRenew();
    // The holder's renewTime is far in the past by b's clock: b must still wait, since b judges
    // by when it saw the record change, not by timestamps written with another clock.
    store.record!.renewTime = microTime(-1e9);
    clock.t = 1000;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.t = 1000 + 14_999;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.t = 1000 + 15_000;
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('loses a race on a stale resourceVersion', async () => {
    const store = new MemoryLease();
    const clock = { t: 0 };
    await elector(store, 'a', clock).tryAcquireOrRenew();
    const b = elector(store, 'b', clock);
    store.record!.holderIdentity = '';
    const update = store.update.bind(store);
    store.update = async (r, rv) => {
      store.rv++; // someone else wrote in between
      return update(r, rv);
    };
    expect(await b.tryAcquireOrRenew()).toBe(false);
  });

  it('steps down when it cannot renew within renewDeadline, and release hands the lease back', async () => {
    const store = new MemoryLease();
    const clock = { t: 0 };
    const sleep = async (ms: number) => {
      clock.t += ms;
    };
    const a = new LeaderElector({ store, identity: 'a', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, now: () => clock.t, sleep });
    const events: string[] = [];
    const abort = new AbortController();
    let renewals = 0;
    const get = store.get.bind(store);
    store.get = async () => {
      if (++renewals > 3) store.down = true;
      return get();
    };
    await a.run(abort.signal, () => events.push(`started@${clock.t}`), () => events.push(`stopped@${clock.t}`));
    // Last good renewal at t=4000; steps down at the first failed try >= 10 s later.
    expect(events).toEqual(['started@0', 'stopped@14000']);
    expect(a.isLeader).toBe(false);

    store.down = false;
    const b = elector(store, 'b', clock);
    const c = new LeaderElector({ store, identity: 'c', now: () => clock.t });
    expect(await c.tryAcquireOrRenew()).toBe(false);
    await b.release(); // not leader: no-op
    expect(store.record!.holderIdentity).toBe('a');
  });

  it('release clears the holder so a standby takes over at once', async () => {
    const store = new MemoryLease();
    const clock = { t: 0 };
    const a = elector(store, 'a', clock);
    const abort = new AbortController();
    const running = a.run(abort.signal, () => abort.abort(), () => {});
    await running;
    expect(a.isLeader).toBe(true);
    await a.release();
    expect(store.record).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    expect(await elector(store, 'b', clock).tryAcquireOrRenew()).toBe(true);
  });

  it('refuses timings that would let two leaders overlap', () => {
    expect(() => new LeaderElector({ store: new MemoryLease(), identity: 'a', leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(/renewDeadline must be shorter/);
  });

  it('writes MicroTime with six fractional digits', () => {
    expect(microTime(Date.parse('2026-01-02T03:04:05.678Z'))).toBe('2026-01-02T03:04:05.678000Z');
  });
});
