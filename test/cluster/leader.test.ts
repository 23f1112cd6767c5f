// Two operator processes share one Lease: only the holder reconciles and writes; when it dies
// the standby takes over and carries on.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, jobManifest, listEvents, setAllPods, waitForPhase, waitForPods } from './harness/kube.js';
import { leaseHolder, metricValue, scrape, spawnReadyOperator, type SpawnedOperator } from './harness/operator.js';
import { stopProcess, waitFor } from './harness/processes.js';

let cluster: TestCluster;
let ops: SpawnedOperator[] = [];
const LEASE = 'leader-test';

beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await Promise.all(ops.map((o) => stopProcess(o.proc)));
  await cluster?.stop();
});

it('lets only the leader write, and hands over when the leader dies', async () => {
  const ns = await createNamespace(cluster.rest, 'lead');
  ops = await Promise.all([spawnReadyOperator(cluster, 'op-a', LEASE), spawnReadyOperator(cluster, 'op-b', LEASE)]);
  const holder = await waitFor('a lease holder', () => leaseHolder(cluster, LEASE));
  const leader = ops.find((o) => o.identity === holder)!;
  const standby = ops.find((o) => o.identity !== holder)!;
  expect(leader).toBeDefined();

  await createJob(cluster.rest, ns, jobManifest('elect', { workers: 2 }));
  const pods = await waitForPods(cluster.rest, ns, 'elect', 2);
  await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
  await waitForPhase(cluster.rest, ns, 'elect', 'Running');

  const [lm, sm] = [await scrape(leader.metricsUrl), await scrape(standby.metricsUrl)];
  expect(metricValue(lm, 'leader_election_master_status')).toBe(1);
  expect(metricValue(sm, 'leader_election_master_status')).toBe(0);
  expect(metricValue(lm, 'controller_runtime_reconcile_total')).toBeGreaterThan(0);
  expect(metricValue(lm, 'xattnjob_pods_created_total')).toBe(2);
  // The standby watched the same objects (its cache is warm) but never reconciled or wrote.
  expect(metricValue(sm, 'controller_runtime_reconcile_total')).toBe(0);
  expect(metricValue(sm, 'xattnjob_pods_created_total')).toBe(0);
  // No write at all by the standby: its only possible request that changes anything is a Lease
  // create that lost the race (409).
  const writes = (method: string) => metricValue(sm, 'rest_client_requests_total', { method });
  expect([writes('PATCH'), writes('PUT'), writes('DELETE')]).toEqual([0, 0, 0]);
  expect(writes('POST')).toBe(metricValue(sm, 'rest_client_requests_total', { method: 'POST', code: '409' }));
  const instances = new Set((await listEvents(cluster.rest, ns, 'elect')).map((e) => e.reportingInstance));
  expect([...instances]).toEqual([leader.identity]);

  await stopProcess(leader.proc, 1000, 'SIGKILL');
  await waitFor('the standby to take the lease', async () => (await leaseHolder(cluster, LEASE)) === standby.identity, 30_000);
  await createJob(cluster.rest, ns, jobManifest('after', { workers: 2 }));
  await waitForPods(cluster.rest, ns, 'after', 2);
  const later = new Set((await listEvents(cluster.rest, ns, 'after')).map((e) => e.reportingInstance));
  expect([...later]).toEqual([standby.identity]);
  expect(metricValue(await scrape(standby.metricsUrl), 'leader_election_master_status')).toBe(1);

  // A graceful stop hands the lease back at once.
  await stopProcess(standby.proc, 20_000);
  expect(standby.proc.proc.exitCode).toBe(0);
  expect(await leaseHolder(cluster, LEASE)).toBeUndefined();
});
