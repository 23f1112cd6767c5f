// The reconciler's I/O order and error handling, against an in-memory gateway that records calls.
import { describe, expect, it } from 'vitest';
import type { XAttnJob, XAttnJobStatus } from '../../crds/types.js';
import { Expectations } from '../../operator/controller/expectations.js';
import { Reconciler, type ObjectLister } from '../../operator/controller/reconciler.js';
import type { KubeGateway, KubeObject } from '../../operator/kube/gateway.js';
import { statusPatch } from '../../operator/kube/gateway.js';
import { silentLogger } from '../../operator/log.js';
import type { JobEvent, PodRef } from '../../operator/status/plan.js';
import { makeJob } from './fixtures.js';

class FakeKube implements KubeGateway {
  calls: string[] = [];
  job?: XAttnJob;
  statusResult: 'ok' | 'conflict' | 'gone' = 'ok';
  failCreate?: (o: KubeObject) => Error | undefined;
  existing = new Set<string>();
  events: JobEvent[] = [];
  async getJob() {
    return this.job ? structuredClone(this.job) : undefined;
  }
  async patchJobStatus(_j: XAttnJob, s: XAttnJobStatus) {
    this.calls.push(`status:${s.phase}:${s.restarts}`);
    if (this.statusResult === 'ok' && this.job) this.job = { ...this.job, status: s };
    return this.statusResult;
  }
  async apply(o: KubeObject) {
    this.calls.push(`apply:${o.kind}/${o.metadata!.name}`);
  }
  async create(o: KubeObject) {
    const err = this.failCreate?.(o);
    if (err) throw err;
    const key = `${o.kind}/${o.metadata!.name}`;
    this.calls.push(`create:${key}`);
    if (this.existing.has(key)) return 'exists' as const;
    this.existing.add(key);
    return 'created' as const;
  }
  async deletePod(_ns: string, p: PodRef) {
    this.calls.push(`delete:${p.name}`);
    return 'deleted' as const;
  }
  async deleteObject(_a: string, kind: string, _ns: string, name: string) {
    this.calls.push(`delete:${kind}/${name}`);
  }
  async deleteJob() {
    this.calls.push('deleteJob');
  }
  async recordEvent(_j: XAttnJob, e: JobEvent) {
    this.events.push(e);
  }
}

const lister = (items: any[] = []): ObjectLister => ({ list: () => items, get: (_ns, name) => items.find((i) => i.metadata.name === name) });

function setup(job: XAttnJob, pods: any[] = []) {
  const kube = new FakeKube();
  kube.job = job;
  const expectations = new Expectations();
  const services = lister([{ metadata: { name: job.metadata.name, namespace: 'team-a' } }]);
  const r = new Reconciler({ kube, pods: lister(pods), services, expectations, log: silentLogger, newToken: () => 't'.repeat(64), now: () => new Date('2026-01-01T00:00:00Z') });
  return { kube, expectations, r };
}

const apiPod = (i: number, phase: string, attempt = 0, exitCode?: number) => ({
  metadata: { name: `demo-worker-${i}`, namespace: 'team-a', uid: `u${i}`, labels: { xattnjob: 'demo', 'xattn.io/node-rank': String(i), 'xattn.io/restart-attempt': String(attempt) }, ownerReferences: [{ kind: 'XAttnJob', uid: 'uid-1', controller: true }] },
  status: { phase, conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }], ...(exitCode === undefined ? {} : { containerStatuses: [{ name: 'worker', state: { terminated: { exitCode } } }] }) },
});

describe('Reconciler', () => {
  it('writes status, then infra (Secret created, never applied), then pods, and expects the creations', async () => {
    const { kube, expectations, r } = setup(makeJob());
    await r.reconcile('team-a/demo');
    expect(kube.calls).toEqual([
      'status:Pending:0',
      'apply:Service/demo',
      'apply:ConfigMap/demo-config',
      'create:Secret/demo-token',
      'create:Pod/demo-worker-0',
      'create:Pod/demo-worker-1',
    ]);
    expect(expectations.pendingCount('team-a/demo')).toBe(2);
    expect(kube.events.map((e) => e.reason)).toEqual(['Accepted', 'SuccessfulCreatePod']);
  });

  it('does nothing more while expected pods have not been observed', async () => {
    const { kube, r } = setup(makeJob());
    await r.reconcile('team-a/demo');
    kube.calls = [];
    expect(await r.reconcile('team-a/demo')).toEqual({ requeueAfterMs: 1000 });
    expect(kube.calls).toEqual([]);
  });

  it('bumps the restart count in status before deleting the gang', async () => {
    const status: XAttnJobStatus = { phase: 'Running', restarts: 0, startTime: '2026-01-01T00:00:00.000Z' };
    const { kube, r } = setup(makeJob({}, status), [apiPod(0, 'Running'), apiPod(1, 'Failed', 0, 1)]);
    await r.reconcile('team-a/demo');
    expect(kube.calls.slice(0, 3)).toEqual(['status:Restarting:1', 'delete:demo-worker-0', 'delete:demo-worker-1']);
    expect(kube.calls.some((c) => c.startsWith('create:Pod'))).toBe(false);
  });

  it('acts on nothing when the status write conflicts, and asks to be requeued', async () => {
    const status: XAttnJobStatus = { phase: 'Running', restarts: 0, startTime: '2026-01-01T00:00:00.000Z' };
    const { kube, r } = setup(makeJob({}, status), [apiPod(0, 'Running'), apiPod(1, 'Failed', 0, 1)]);
    kube.statusResult = 'conflict';
    expect(await r.reconcile('team-a/demo')).toEqual({ requeueAfterMs: 0 });
    expect(kube.calls).toEqual(['status:Restarting:1']);
  });

  it('remembers a create failure, reports it once as an event, shows it in status, and rethrows', async () => {
    const { kube, r } = setup(makeJob());
    kube.failCreate = (o) => (o.kind === 'Pod' ? new Error('pods "demo-worker-0" is forbidden: exceeded quota') : undefined);
    await expect(r.reconcile('team-a/demo')).rejects.toThrow(/exceeded quota/);
    await expect(r.reconcile('team-a/demo')).rejects.toThrow(/exceeded quota/);
    expect(kube.events.filter((e) => e.reason === 'FailedCreatePod')).toHaveLength(1);
    expect(kube.job!.status!.conditions!.find((c) => c.type === 'Created')).toMatchObject({ status: 'False', reason: 'CreateFailed', message: expect.stringMatching(/exceeded quota/) });
  });

  it('re-applies infra only when the generation changes', async () => {
    const { kube, r, expectations } = setup(makeJob());
    await r.reconcile('team-a/demo');
    expectations.forget('team-a/demo');
    kube.calls = [];
    await r.reconcile('team-a/demo');
    expect(kube.calls.filter((c) => c.startsWith('apply'))).toEqual([]);
    kube.job!.metadata.generation = 2;
    await r.reconcile('team-a/demo');
    expect(kube.calls.filter((c) => c.startsWith('apply'))).toEqual(['apply:Service/demo', 'apply:ConfigMap/demo-config']);
  });

  it('forgets a job that is gone', async () => {
    const { kube, r } = setup(makeJob());
    kube.job = undefined;
    expect(await r.reconcile('team-a/demo')).toEqual({});
    expect(kube.calls).toEqual([]);
  });
});

describe('statusPatch', () => {
  it('sends removed status fields as null and the resourceVersion as precondition', () => {
    const job = makeJob({}, { phase: 'Running', startTime: 't', restarts: 0 });
    expect(statusPatch(job, { phase: 'Suspended', restarts: 0 })).toEqual({ metadata: { resourceVersion: '10' }, status: { phase: 'Suspended', restarts: 0, startTime: null } });
  });
});
