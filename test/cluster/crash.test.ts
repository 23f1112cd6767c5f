// The operator is killed (SIGKILL) while it creates a gang's pods and a new process takes over:
// every pod exists exactly once, and no pod was deleted and created again.
import { Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, jobManifest, listPods, waitForPhase, waitForPods } from './harness/kube.js';
import { leaseHolder, spawnReadyOperator, type SpawnedOperator } from './harness/operator.js';
import { stopProcess, waitFor } from './harness/processes.js';

let cluster: TestCluster;
const ops: SpawnedOperator[] = [];
const LEASE = 'crash-test';
const WORKERS = 24;

beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await Promise.all(ops.map((o) => stopProcess(o.proc)));
  await cluster?.stop();
});

it('creates no duplicate pods when killed mid-reconcile and restarted', async () => {
  const ns = await createNamespace(cluster.rest, 'crash');
  const first = await spawnReadyOperator(cluster, 'crash-1', LEASE);
  ops.push(first);
  await waitFor('first operator leads', async () => (await leaseHolder(cluster, LEASE)) === 'crash-1');

  // Every pod the API server ever showed, by name: a second uid would be a duplicate creation.
  const uids = new Map<string, Set<string>>();
  let deletions = 0;
  let killedAt = -1;
  const watch = await new Watch(cluster.kc).watch(
    `/api/v1/namespaces/${ns}/pods`,
    {},
    (type: string, pod: any) => {
      if (type === 'ADDED') {
        const set = uids.get(pod.metadata.name) ?? new Set();
        set.add(pod.metadata.uid);
        uids.set(pod.metadata.name, set);
        if (killedAt < 0) {
          first.proc.proc.kill('SIGKILL');
          killedAt = uids.size;
        }
      }
      if (type === 'DELETED') deletions++;
    },
    (err: unknown) => {
      if (err && (err as Error).name !== 'AbortError') console.log('test watch ended:', String(err));
    },
  );

  await createJob(cluster.rest, ns, jobManifest('crashy', { workers: WORKERS, workload: { textTokens: 256, visualTokens: 4096 } }));
  await waitFor('the first operator to be killed', () => first.proc.proc.exitCode !== null || first.proc.proc.signalCode !== null, 30_000);
  const atKill = (await listPods(cluster.rest, ns, 'crashy')).length;
  console.log(`operator killed after its first pod was seen; ${atKill} of ${WORKERS} pods existed then`);

  const second = await spawnReadyOperator(cluster, 'crash-2', LEASE);
  ops.push(second);
  const pods = await waitForPods(cluster.rest, ns, 'crashy', WORKERS, 0, 60_000);
  await waitForPhase(cluster.rest, ns, 'crashy', 'Created', 30_000);
  watch.abort();

  expect(pods.map((p) => p.metadata.name).sort()).toEqual(Array.from({ length: WORKERS }, (_, i) => `crashy-worker-${i}`).sort());
  expect(deletions).toBe(0);
  for (const [name, set] of uids) expect([name, set.size]).toEqual([name, 1]);
  expect(uids.size).toBe(WORKERS);
});
