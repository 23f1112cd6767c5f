// kube-apiserver goes away and comes back under a running operator: the supervised watches
// reconnect, and the operator converges on what changed meanwhile.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { OperatorHandle } from '../../operator/run.js';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, jobManifest, setAllPods, waitForPhase, waitForPods } from './harness/kube.js';
import { metricValue, scrape, startTestOperator } from './harness/operator.js';

let cluster: TestCluster;
let op: OperatorHandle;

beforeAll(async () => {
  cluster = await startCluster();
  // A lease that outlives the outage, so this test sees recovery rather than a leader hand-off.
  op = await startTestOperator(cluster, { leaderElection: { namespace: 'default', name: 'restart-test', leaseDurationMs: 90_000, renewDeadlineMs: 80_000, retryPeriodMs: 1000 } });
});
afterAll(async () => {
  await op?.stop();
  await cluster?.stop();
});

it('recovers after the API server restarts and converges', async () => {
  const ns = await createNamespace(cluster.rest, 'restart');
  await createJob(cluster.rest, ns, jobManifest('before', { workers: 2 }));
  const pods = await waitForPods(cluster.rest, ns, 'before', 2);
  await waitForPhase(cluster.rest, ns, 'before', 'Created');

  await cluster.stopApiServer();
  await new Promise((r) => setTimeout(r, 2000));
  await cluster.startApiServer();

  // Changes the operator could only learn about through re-established watches.
  await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
  await createJob(cluster.rest, ns, jobManifest('after', { workers: 3 }));
  await waitForPhase(cluster.rest, ns, 'before', 'Running', 60_000);
  await waitForPods(cluster.rest, ns, 'after', 3, 0, 60_000);
  await waitForPhase(cluster.rest, ns, 'after', 'Created', 30_000);

  const m = await scrape(op.metricsUrl!);
  expect(metricValue(m, 'xattnjob_informer_restarts_total')).toBeGreaterThan(0);
  expect(op.isLeader()).toBe(true);
  expect(op.controller.synced).toBe(true);
});
