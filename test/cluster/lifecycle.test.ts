// Suspend and resume, activeDeadlineSeconds and ttlSecondsAfterFinished against a real API server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStatus } from '../../operator/kube/rest.js';
import type { OperatorHandle } from '../../operator/run.js';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, getJob, jobManifest, listPods, patchJobSpec, setAllPods, waitForJob, waitForPhase, waitForPods } from './harness/kube.js';
import { startTestOperator } from './harness/operator.js';
import { waitFor } from './harness/processes.js';

let cluster: TestCluster;
let op: OperatorHandle;
let ns: string;

beforeAll(async () => {
  cluster = await startCluster();
  ns = await createNamespace(cluster.rest, 'life');
  op = await startTestOperator(cluster);
});
afterAll(async () => {
  await op?.stop();
  await cluster?.stop();
});

describe('suspend', () => {
  it('deletes the pods and keeps the Service; resume recreates them from the current spec', async () => {
    await createJob(cluster.rest, ns, jobManifest('pausable', { workers: 2 }));
    const before = await waitForPods(cluster.rest, ns, 'pausable', 2);
    await setAllPods(cluster.rest, ns, before, { phase: 'Running' });
    const running = await waitForPhase(cluster.rest, ns, 'pausable', 'Running');
    expect(running.status!.startTime).toBeTruthy();

    await patchJobSpec(cluster.rest, ns, 'pausable', { runPolicy: { suspend: true } });
    const suspended = await waitForPhase(cluster.rest, ns, 'pausable', 'Suspended');
    await waitFor('pods deleted', async () => (await listPods(cluster.rest, ns, 'pausable')).length === 0);
    expect(suspended.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Suspended', status: 'True', reason: 'Suspended' }));
    expect(suspended.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Running', status: 'False' }));
    expect(suspended.status!.startTime).toBeUndefined();
    const svc = await cluster.rest.get(`/api/v1/namespaces/${ns}/services/pausable`);
    expect(svc.metadata.name).toBe('pausable');

    // While suspended the template changes (as Kueue does when it admits a job elsewhere).
    await patchJobSpec(cluster.rest, ns, 'pausable', { image: 'ghcr.io/xattn/runtime:0.2.0', scheduling: { nodeSelector: { pool: 'b' } } });
    await patchJobSpec(cluster.rest, ns, 'pausable', { runPolicy: { suspend: false } });
    const after = await waitForPods(cluster.rest, ns, 'pausable', 2);
    for (const p of after) {
      expect(p.spec.containers[0].image).toBe('ghcr.io/xattn/runtime:0.2.0');
      expect(p.spec.nodeSelector).toEqual({ pool: 'b' });
      expect(before.map((b) => b.metadata.uid)).not.toContain(p.metadata.uid);
    }
    const resumed = await waitForJob(cluster.rest, ns, 'pausable', 'resumed', (j) => j.status?.phase !== 'Suspended');
    expect(resumed.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Suspended', status: 'False', reason: 'Resumed' }));
    expect(resumed.status!.phase).toMatch(/Pending|Created/);
    await setAllPods(cluster.rest, ns, after, { phase: 'Running' });
    const again = await waitForPhase(cluster.rest, ns, 'pausable', 'Running');
    // The printer column must not say Suspended after a resume, whatever order conditions are in.
    expect(again.status!.phase).toBe('Running');
    expect(Date.parse(again.status!.startTime!)).toBeGreaterThan(Date.parse(running.status!.startTime!));
  });

  it('creates no pods for a job submitted suspended, but does create its Service', async () => {
    await createJob(cluster.rest, ns, jobManifest('queued', { workers: 2, runPolicy: { suspend: true } }));
    await waitForPhase(cluster.rest, ns, 'queued', 'Suspended');
    await waitFor('service', () => cluster.rest.get(`/api/v1/namespaces/${ns}/services/queued`).then(() => true, () => false));
    expect(await listPods(cluster.rest, ns, 'queued')).toEqual([]);
  });
});

describe('deadline', () => {
  it('fails a job that runs past activeDeadlineSeconds and stops its pods', async () => {
    await createJob(cluster.rest, ns, jobManifest('slow', { workers: 2, runPolicy: { activeDeadlineSeconds: 2 } }));
    const pods = await waitForPods(cluster.rest, ns, 'slow', 2);
    await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
    const failed = await waitForPhase(cluster.rest, ns, 'slow', 'Failed', 20_000);
    expect(failed.status).toMatchObject({ reason: 'DeadlineExceeded' });
    expect(failed.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }));
    await waitFor('pods stopped', async () => (await listPods(cluster.rest, ns, 'slow')).length === 0);
  });
});

describe('ttl', () => {
  it('deletes a finished job ttlSecondsAfterFinished after it completed', async () => {
    await createJob(cluster.rest, ns, jobManifest('shortlived', { workers: 1, runPolicy: { ttlSecondsAfterFinished: 2 } }));
    const pods = await waitForPods(cluster.rest, ns, 'shortlived', 1);
    await setAllPods(cluster.rest, ns, pods, { phase: 'Succeeded' });
    const done = await waitForPhase(cluster.rest, ns, 'shortlived', 'Succeeded');
    const gone = await waitFor<number>(
      'job deleted',
      async () => {
        try {
          await getJob(cluster.rest, ns, 'shortlived');
          return undefined;
        } catch (e) {
          if (isStatus(e, 404)) return Date.now();
          throw e;
        }
      },
      20_000,
    );
    expect(gone - Date.parse(done.status!.completionTime!)).toBeGreaterThanOrEqual(1000);
  });
});
