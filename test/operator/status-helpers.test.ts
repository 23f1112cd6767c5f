import { describe, expect, it } from 'vitest';
import { setCondition, setIfPresent } from '../../operator/status/conditions.js';
import { describeFailure, failureAction } from '../../operator/status/failure-policy.js';
import { countPods, podView } from '../../operator/status/pods.js';
import { pod } from './fixtures.js';

describe('conditions', () => {
  it('moves lastTransitionTime only when the status flips', () => {
    const a = setCondition(undefined, { type: 'Running', status: 'True', reason: 'R1', message: 'm1' }, 't1', 1);
    const b = setCondition(a, { type: 'Running', status: 'True', reason: 'R2', message: 'm2' }, 't2', 2);
    expect(b).toEqual([{ type: 'Running', status: 'True', reason: 'R2', message: 'm2', lastTransitionTime: 't1', observedGeneration: 2 }]);
    const c = setCondition(b, { type: 'Running', status: 'False', reason: 'R3', message: '' }, 't3');
    expect(c[0]!.lastTransitionTime).toBe('t3');
  });

  it('keeps one entry per type, in order', () => {
    let l = setCondition(undefined, { type: 'Created', status: 'True', reason: 'A', message: '' }, 't');
    l = setCondition(l, { type: 'Running', status: 'True', reason: 'B', message: '' }, 't');
    l = setCondition(l, { type: 'Created', status: 'True', reason: 'C', message: '' }, 't');
    expect(l.map((c) => `${c.type}:${c.reason}`)).toEqual(['Created:C', 'Running:B']);
  });

  it('setIfPresent leaves absent types absent', () => {
    expect(setIfPresent(undefined, { type: 'Suspended', status: 'False', reason: 'X', message: '' }, 't')).toBeUndefined();
  });
});

describe('failure policy', () => {
  const rules = [
    { action: 'FailJob' as const, exitCodes: [2] },
    { action: 'Retry' as const, exitCodes: [2, 137] },
  ];
  it('lets the first matching rule decide', () => {
    expect(failureAction(rules, 2)).toBe('FailJob');
    expect(failureAction(rules, 137)).toBe('Retry');
  });
  it('retries what no rule names, and failures without an exit code', () => {
    expect(failureAction(rules, 1)).toBe('Retry');
    expect(failureAction(rules, undefined)).toBe('Retry');
    expect(failureAction(undefined, 2)).toBe('Retry');
  });
  it('describes failures for status messages', () => {
    expect(describeFailure(pod(3, { phase: 'Failed', exitCode: 137, reason: 'OOMKilled' }))).toBe('worker 3 (pod demo-worker-3) failed with exit code 137 (OOMKilled)');
    expect(describeFailure(pod(1, { phase: 'Running', terminating: true }))).toMatch(/was deleted while the gang ran/);
  });
});

describe('podView', () => {
  const apiPod = (over: any = {}) => ({
    metadata: { name: 'j-worker-2', uid: 'u', labels: { 'xattn.io/node-rank': '2', 'xattn.io/restart-attempt': '1' }, ownerReferences: [{ kind: 'XAttnJob', uid: 'job', controller: true }], ...over.metadata },
    status: over.status ?? {},
  });

  it('reads rank, attempt, owner, readiness and the worker container’s exit', () => {
    const v = podView(apiPod({
      status: {
        phase: 'Failed',
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [{ name: 'sidecar', state: { running: {} } }, { name: 'worker', state: { terminated: { exitCode: 3, reason: 'Error' } } }],
      },
    }));
    expect(v).toEqual({ name: 'j-worker-2', uid: 'u', index: 2, attempt: 1, ownerUid: 'job', phase: 'Failed', ready: false, terminating: false, exitCode: 3, reason: 'Error' });
  });

  it('marks malformed labels and terminating pods', () => {
    const v = podView(apiPod({ metadata: { labels: { 'xattn.io/node-rank': 'x' }, deletionTimestamp: '2026-01-01T00:00:00Z' } }));
    expect(v).toMatchObject({ index: -1, attempt: -1, terminating: true, phase: 'Pending' });
    expect(podView(apiPod({ status: { phase: 'Evicted?' } })).phase).toBe('Unknown');
  });

  it('counts phases, and readiness only of running pods', () => {
    const c = countPods([pod(0, { phase: 'Running', ready: true }), pod(1, { phase: 'Running' }), pod(2, { phase: 'Succeeded', ready: true }), pod(3, { phase: 'Failed' })]);
    expect(c).toEqual({ existing: 4, running: 2, ready: 1, succeeded: 1, failed: 1 });
  });
});
