import { describe, expect, it } from 'vitest';
import type { XAttnJobStatus } from '../../crds/types.js';
import { planReconcile } from '../../operator/status/plan.js';
import { makeJob, pod, running } from './fixtures.js';

const now = new Date('2026-01-01T00:10:00Z');
const T0 = '2026-01-01T00:00:00.000Z';
const cond = (s: XAttnJobStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);
const runningStatus = (extra: Partial<XAttnJobStatus> = {}): XAttnJobStatus => ({
  phase: 'Running', restarts: 0, startTime: T0,
  conditions: [
    { type: 'Created', status: 'True', reason: 'WorkersCreated', message: '', lastTransitionTime: T0 },
    { type: 'Running', status: 'True', reason: 'AllWorkersRunning', message: '', lastTransitionTime: T0 },
  ],
  ...extra,
});

describe('a new job', () => {
  it('creates every worker of attempt 0, is Pending, and counts as created', () => {
    const plan = planReconcile({ job: makeJob({ workers: 3 }), pods: [], now });
    expect(plan.createPods).toEqual([0, 1, 2]);
    expect(plan.attempt).toBe(0);
    expect(plan.ensureInfra).toBe(true);
    expect(plan.status).toMatchObject({ phase: 'Pending', restarts: 0, workersReadyText: '0/3', worldSize: 3, observedGeneration: 1, startTime: now.toISOString() });
    expect(cond(plan.status, 'Created')).toMatchObject({ status: 'False', reason: 'CreatingWorkers' });
    expect(plan.transitions).toEqual(['created']);
    expect(plan.events.map((e) => e.reason)).toEqual(['Accepted']);
  });

  it('creates only the missing workers', () => {
    const plan = planReconcile({ job: makeJob({ workers: 3 }, { phase: 'Pending' }), pods: [pod(1)], now });
    expect(plan.createPods).toEqual([0, 2]);
    expect(plan.transitions).toEqual([]);
  });

  it('shows the last create error in the Created condition', () => {
    const plan = planReconcile({ job: makeJob({}, { phase: 'Pending' }), pods: [], now, createError: 'podgroups is forbidden' });
    expect(cond(plan.status, 'Created')).toMatchObject({ status: 'False', reason: 'CreateFailed', message: 'podgroups is forbidden' });
    expect(plan.status).toMatchObject({ phase: 'Pending', reason: 'CreateFailed' });
  });
});

describe('progress', () => {
  it('is Created while some workers are not running yet, Running once all are', () => {
    const created = planReconcile({ job: makeJob({}, { phase: 'Pending' }), pods: [running(0), pod(1)], now });
    expect(created.status).toMatchObject({ phase: 'Created', workersReadyText: '1/2' });
    expect(cond(created.status, 'Created')?.status).toBe('True');
    expect(cond(created.status, 'Running')).toBeUndefined();

    const run = planReconcile({ job: makeJob({}, created.status), pods: [running(0), running(1)], now });
    expect(run.status).toMatchObject({ phase: 'Running', workersReadyText: '2/2', workersRunning: 2 });
    expect(cond(run.status, 'Running')).toMatchObject({ status: 'True', reason: 'AllWorkersRunning' });
    expect(run.createPods).toEqual([]);
  });

  it('keeps lastTransitionTime of unchanged conditions', () => {
    const plan = planReconcile({ job: makeJob({}, runningStatus()), pods: [running(0), running(1)], now });
    expect(cond(plan.status, 'Running')!.lastTransitionTime).toBe(T0);
    expect(cond(plan.status, 'Created')!.lastTransitionTime).toBe(T0);
  });

  it('succeeds when every worker exited 0, and keeps finished pods under cleanPodPolicy Running', () => {
    const done = [pod(0, { phase: 'Succeeded', exitCode: 0 }), pod(1, { phase: 'Succeeded', exitCode: 0 })];
    const plan = planReconcile({ job: makeJob({}, runningStatus()), pods: done, now });
    expect(plan.status).toMatchObject({ phase: 'Succeeded', reason: 'AllWorkersSucceeded', completionTime: now.toISOString() });
    expect(cond(plan.status, 'Succeeded')?.status).toBe('True');
    expect(cond(plan.status, 'Running')).toMatchObject({ status: 'False', reason: 'JobFinished', lastTransitionTime: now.toISOString() });
    expect(plan.deletePods).toEqual([]);
    expect(plan.transitions).toEqual(['succeeded']);
  });

  it('waits, still Running, while some workers have finished and others run', () => {
    const plan = planReconcile({ job: makeJob({}, runningStatus()), pods: [pod(0, { phase: 'Succeeded' }), running(1)], now });
    expect(plan.status.phase).toBe('Running');
  });
});

describe('failures', () => {
  it('restarts the whole gang on a retryable failure: attempt+1 first, every current pod deleted', () => {
    const job = makeJob({ runPolicy: { backoffLimit: 2 } }, runningStatus());
    const plan = planReconcile({ job, pods: [running(0), pod(1, { phase: 'Failed', exitCode: 1, reason: 'Error' })], now });
    expect(plan.status).toMatchObject({ phase: 'Restarting', reason: 'WorkerFailed', restarts: 1, workersReadyText: '0/2' });
    expect(plan.status.message).toMatch(/worker 1 \(pod demo-worker-1\) failed with exit code 1 \(Error\); restarting all 2 workers \(restart 1 of 2\)/);
    expect(plan.attempt).toBe(1);
    expect(plan.deletePods.map((p) => p.name).sort()).toEqual(['demo-worker-0', 'demo-worker-1']);
    expect(plan.createPods).toEqual([]);
    expect(cond(plan.status, 'Restarting')?.status).toBe('True');
    expect(cond(plan.status, 'Running')?.status).toBe('False');
    expect(plan.transitions).toEqual(['restarted']);
  });

  it('waits for the old attempt to be gone before creating the new one', () => {
    const status = { ...runningStatus(), phase: 'Restarting' as const, restarts: 1, reason: 'WorkerFailed', message: 'm' };
    const terminating = [pod(0, { terminating: true, phase: 'Running' }), pod(1, { phase: 'Failed' })];
    const waiting = planReconcile({ job: makeJob({}, status), pods: terminating, now });
    expect(waiting.createPods).toEqual([]);
    expect(waiting.deletePods.map((p) => p.name)).toEqual(['demo-worker-1']);
    expect(waiting.status).toMatchObject({ phase: 'Restarting', restarts: 1 });

    const clear = planReconcile({ job: makeJob({}, status), pods: [], now });
    expect(clear.createPods).toEqual([0, 1]);
    expect(clear.attempt).toBe(1);
  });

  it('returns to Running after the restarted gang runs', () => {
    const status = { ...runningStatus(), phase: 'Restarting' as const, restarts: 1, conditions: [...runningStatus().conditions!, { type: 'Restarting', status: 'True' as const, reason: 'WorkerFailed', message: '', lastTransitionTime: T0 }] };
    const plan = planReconcile({ job: makeJob({}, status), pods: [running(0, 1), running(1, 1)], now });
    expect(plan.status.phase).toBe('Running');
    expect(cond(plan.status, 'Restarting')).toMatchObject({ status: 'False', reason: 'GangRunning' });
  });

  it('fails after backoffLimit restarts', () => {
    const job = makeJob({ runPolicy: { backoffLimit: 1 } }, runningStatus({ restarts: 1 }));
    const plan = planReconcile({ job, pods: [running(0, 1), pod(1, { attempt: 1, phase: 'Failed', exitCode: 137 })], now });
    expect(plan.status).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', restarts: 1, completionTime: now.toISOString() });
    expect(plan.status.message).toMatch(/already restarted 1 times \(backoffLimit 1\)/);
    // cleanPodPolicy Running: only the running rank goes.
    expect(plan.deletePods.map((p) => p.name)).toEqual(['demo-worker-0']);
    expect(plan.transitions).toEqual(['failed']);
  });

  it('fails at once, without using a restart, on a FailJob exit code', () => {
    const job = makeJob({ failurePolicy: { rules: [{ action: 'Retry', exitCodes: [1] }, { action: 'FailJob', exitCodes: [2, 3] }] } }, runningStatus());
    const plan = planReconcile({ job, pods: [running(0), pod(1, { phase: 'Failed', exitCode: 3 })], now });
    expect(plan.status).toMatchObject({ phase: 'Failed', reason: 'PodFailurePolicy', restarts: 0 });
    const retry = planReconcile({ job, pods: [running(0), pod(1, { phase: 'Failed', exitCode: 1 })], now });
    expect(retry.status.phase).toBe('Restarting');
  });

  it('treats a deleted or vanished worker of a running gang as a failure', () => {
    const job = makeJob({}, runningStatus());
    expect(planReconcile({ job, pods: [running(0), pod(1, { phase: 'Running', terminating: true })], now }).status.phase).toBe('Restarting');
    const vanished = planReconcile({ job, pods: [running(0)], now });
    expect(vanished.status.phase).toBe('Restarting');
    expect(vanished.status.message).toMatch(/worker 1 \(pod demo-worker-1\) is missing/);
  });

  it('does not mistake a worker not created yet for a lost one', () => {
    const plan = planReconcile({ job: makeJob({}, { phase: 'Pending' }), pods: [running(0)], now });
    expect(plan.status.phase).toBe('Pending');
    expect(plan.createPods).toEqual([1]);
  });

  it('deletes pods of another job that had the same name', () => {
    const plan = planReconcile({ job: makeJob({}, { phase: 'Pending' }), pods: [pod(0, { ownerUid: 'old-uid', uid: 'x' })], now });
    expect(plan.deletePods).toEqual([{ name: 'demo-worker-0', uid: 'x' }]);
    expect(plan.createPods).toEqual([]);
  });
});

describe('suspend and resume', () => {
  it('deletes every pod and the PodGroup, keeps infra, clears startTime', () => {
    const job = makeJob({ runPolicy: { suspend: true }, scheduling: { gang: 'podgroup' } }, runningStatus());
    const plan = planReconcile({ job, pods: [running(0), running(1)], now });
    expect(plan.status).toMatchObject({ phase: 'Suspended', reason: 'Suspended' });
    expect(plan.status.startTime).toBeUndefined();
    expect(plan.deletePods).toHaveLength(2);
    expect(plan.deletePodGroup).toBe(true);
    expect(plan.ensureInfra).toBe(true);
    expect(plan.createPods).toEqual([]);
    expect(cond(plan.status, 'Suspended')?.status).toBe('True');
    expect(cond(plan.status, 'Running')?.status).toBe('False');
    expect(plan.transitions).toEqual(['suspended']);
  });

  it('resumes: Suspended=False/Resumed, a fresh startTime, all pods created', () => {
    const suspended = planReconcile({ job: makeJob({ runPolicy: { suspend: true } }, runningStatus()), pods: [], now }).status;
    const later = new Date(now.getTime() + 60_000);
    const plan = planReconcile({ job: makeJob({}, suspended), pods: [], now: later });
    expect(cond(plan.status, 'Suspended')).toMatchObject({ status: 'False', reason: 'Resumed' });
    expect(plan.status.startTime).toBe(later.toISOString());
    expect(plan.createPods).toEqual([0, 1]);
    expect(plan.status.phase).toBe('Pending');
    expect(plan.transitions).toEqual(['resumed']);
  });

  it('never shows a Suspended condition on a job that was never suspended', () => {
    const plan = planReconcile({ job: makeJob({}, runningStatus()), pods: [running(0), running(1)], now });
    expect(cond(plan.status, 'Suspended')).toBeUndefined();
  });
});

describe('deadline and ttl', () => {
  it('requeues for the deadline, then fails with DeadlineExceeded and stops the pods', () => {
    const job = makeJob({ runPolicy: { activeDeadlineSeconds: 900, cleanPodPolicy: 'None' } }, runningStatus());
    const early = planReconcile({ job, pods: [running(0), running(1)], now });
    expect(early.requeueAfterMs).toBe(5 * 60_000);
    const late = planReconcile({ job, pods: [running(0), running(1)], now: new Date(Date.parse(T0) + 900_000) });
    expect(late.status).toMatchObject({ phase: 'Failed', reason: 'DeadlineExceeded' });
    expect(late.deletePods).toHaveLength(2);
  });

  it('deletes a finished job ttlSecondsAfterFinished after completion, requeueing until then', () => {
    const status: XAttnJobStatus = { phase: 'Succeeded', completionTime: '2026-01-01T00:09:00.000Z' };
    const job = makeJob({ runPolicy: { ttlSecondsAfterFinished: 120 } }, status);
    const wait = planReconcile({ job, pods: [], now });
    expect(wait.deleteJob).toBe(false);
    expect(wait.requeueAfterMs).toBe(60_000);
    expect(planReconcile({ job, pods: [], now: new Date('2026-01-01T00:11:00Z') }).deleteJob).toBe(true);
  });

  it('applies cleanPodPolicy All to a finished job and creates nothing', () => {
    const job = makeJob({ runPolicy: { cleanPodPolicy: 'All' } }, { phase: 'Failed' });
    const plan = planReconcile({ job, pods: [pod(0, { phase: 'Failed' }), pod(1, { phase: 'Succeeded' })], now });
    expect(plan.deletePods).toHaveLength(2);
    expect(plan.createPods).toEqual([]);
    expect(plan.ensureInfra).toBe(false);
  });
});
