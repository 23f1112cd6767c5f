// Reconcile against a real API server: the exact objects a job gets, pod phases (patched here as
// a kubelet would) driving status, and the failure handling of a gang.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ConfigMap, Pod, Secret, Service } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateXAttnJob } from '../../crds/validate.js';
import type { OperatorHandle } from '../../operator/run.js';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, getJob, jobManifest, listEvents, listPods, setAllPods, setPodPhase, waitForJob, waitForPhase, waitForPods } from './harness/kube.js';
import { metricValue, scrape, startTestOperator } from './harness/operator.js';
import { waitFor } from './harness/processes.js';

let cluster: TestCluster;
let op: OperatorHandle;
let ns: string;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.installCrd(parse(readFileSync(path.join(__dirname, 'fixtures/podgroup-crd.yaml'), 'utf8')));
  ns = await createNamespace(cluster.rest, 'rec');
  op = await startTestOperator(cluster);
});
afterAll(async () => {
  await op?.stop();
  await cluster?.stop();
});

const list = async (p: string) => (await cluster.rest.get(p, { query: { labelSelector: 'xattnjob=objs' } })).items;

describe('objects', () => {
  it('creates exactly the Service, ConfigMap, Secret, PodGroup and worker pods a job needs', async () => {
    const manifest = jobManifest('objs', {
      workers: 3,
      gpusPerWorker: 2,
      checkpoint: { claimName: 'ckpt' },
      networking: { socketIfname: '=eth0', ncclEnv: { NCCL_DEBUG: 'INFO' } },
      resources: { requests: { cpu: '4', memory: '16Gi' } },
      scheduling: { gang: 'podgroup' },
    });
    const job = await createJob(cluster.rest, ns, manifest);
    const pods = await waitForPods(cluster.rest, ns, 'objs', 3);
    const status = await waitForPhase(cluster.rest, ns, 'objs', 'Created');

    expect(pods.map((p) => p.metadata.name)).toEqual(['objs-worker-0', 'objs-worker-1', 'objs-worker-2']);
    const svcs = await list(`/api/v1/namespaces/${ns}/services`);
    const cms = await list(`/api/v1/namespaces/${ns}/configmaps`);
    const secrets = await list(`/api/v1/namespaces/${ns}/secrets`);
    const groups = await list(`/apis/scheduling.x-k8s.io/v1alpha1/namespaces/${ns}/podgroups`);
    expect([svcs.length, cms.length, secrets.length, groups.length]).toEqual([1, 1, 1, 1]);

    for (const obj of [...svcs, ...cms, ...secrets, ...groups, ...pods]) {
      expect(obj.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'XAttnJob', name: 'objs', uid: job.metadata.uid, controller: true })]);
    }
    const svc = svcs[0];
    expect(svc.metadata.name).toBe('objs');
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.publishNotReadyAddresses).toBe(true);
    expect(svc.spec.ports.map((p: any) => p.port).sort()).toEqual([29500, 9400]);

    const world = 6;
    for (const [i, pod] of pods.entries()) {
      expect(Object.entries(svc.spec.selector).every(([k, v]) => pod.metadata.labels[k] === v)).toBe(true);
      expect(pod.metadata.labels).toMatchObject({ xattnjob: 'objs', 'xattn.io/node-rank': String(i), 'scheduling.x-k8s.io/pod-group': 'objs' });
      expect(pod.spec).toMatchObject({ hostname: `objs-worker-${i}`, subdomain: 'objs', restartPolicy: 'Never' });
      const c = pod.spec.containers[0];
      expect(c.command).toEqual(['xattn', 'worker']);
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      expect(env).toEqual({
        MASTER_ADDR: `objs-worker-0.objs.${ns}.svc`,
        MASTER_PORT: '29500',
        WORLD_SIZE: String(world),
        RANK: String(2 * i),
        LOCAL_RANK: '0',
        LOCAL_WORLD_SIZE: '2',
        NODE_RANK: String(i),
        XATTN_JOB_NAME: 'objs',
        XATTN_CONFIG: '/etc/xattn/job.yaml',
        XATTN_CHECKPOINT_DIR: '/checkpoints',
        XATTN_METRICS_PORT: '9400',
        XATTN_POD_HOSTNAME: `objs-worker-${i}.objs.${ns}.svc`,
        XATTN_JOB_TOKEN: { secretKeyRef: { name: 'objs-token', key: 'token' } },
        NCCL_SOCKET_IFNAME: '=eth0',
        NCCL_DEBUG: 'INFO',
      });
      expect(c.resources).toEqual({ requests: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '2' }, limits: { 'nvidia.com/gpu': '2' } });
      expect(c.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 9400 }));
      const mounts = Object.fromEntries(c.volumeMounts.map((m: any) => [m.mountPath, m.name]));
      const vols = Object.fromEntries(pod.spec.volumes.map((v: any) => [v.name, v]));
      expect(vols[mounts['/dev/shm']].emptyDir).toEqual({ medium: 'Memory', sizeLimit: '8Gi' });
      expect(vols[mounts['/etc/xattn']].configMap.name).toBe('objs-config');
      expect(vols[mounts['/checkpoints']].persistentVolumeClaim.claimName).toBe('ckpt');
    }

    // The worker reads the mounted manifest back through the same validation the CLI uses.
    const mounted = validateXAttnJob(parse(cms[0].data['job.yaml']));
    expect(mounted.spec).toEqual(job.spec);
    expect(Buffer.from(secrets[0].data.token, 'base64').toString().length).toBeGreaterThanOrEqual(32);
    expect(groups[0].spec).toEqual({ minMember: 3, scheduleTimeoutSeconds: 300, minResources: { cpu: '12', memory: '48Gi', 'nvidia.com/gpu': '6' } });

    // Independent check of every built object against the Kubernetes OpenAPI schemas.
    for (const p of pods) expect(() => new Pod(p).validate()).not.toThrow();
    expect(() => new Service(svc).validate()).not.toThrow();
    expect(() => new ConfigMap(cms[0]).validate()).not.toThrow();
    expect(() => new Secret(secrets[0]).validate()).not.toThrow();

    expect(status.status).toMatchObject({ workersReadyText: '0/3', workersTotal: 3, worldSize: 6, restarts: 0, observedGeneration: 1 });
    expect(status.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Created', status: 'True' }));
    const reasons = (await listEvents(cluster.rest, ns, 'objs')).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Accepted', 'SuccessfulCreatePod']));
  });
});

describe('phases', () => {
  it('goes Created → Running only when every worker runs, then Succeeded when all exit 0', async () => {
    await createJob(cluster.rest, ns, jobManifest('happy', { workers: 2 }));
    const pods = await waitForPods(cluster.rest, ns, 'happy', 2);
    await setPodPhase(cluster.rest, ns, pods[0].metadata.name, { phase: 'Running' });
    const partial = await waitForJob(cluster.rest, ns, 'happy', '1/2 ready', (j) => j.status?.workersReadyText === '1/2');
    expect(partial.status!.phase).toBe('Created');

    await setPodPhase(cluster.rest, ns, pods[1].metadata.name, { phase: 'Running' });
    const running = await waitForPhase(cluster.rest, ns, 'happy', 'Running');
    expect(running.status!.workersReadyText).toBe('2/2');
    expect(running.status!.startTime).toBeTruthy();
    expect(running.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Running', status: 'True', reason: 'AllWorkersRunning' }));

    await setAllPods(cluster.rest, ns, pods, { phase: 'Succeeded' });
    const done = await waitForPhase(cluster.rest, ns, 'happy', 'Succeeded');
    expect(done.status!.completionTime).toBeTruthy();
    expect(done.status!.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'Succeeded', status: 'True', reason: 'AllWorkersSucceeded' }),
        expect.objectContaining({ type: 'Running', status: 'False' }),
      ]),
    );
    // cleanPodPolicy Running keeps finished pods (their logs stay readable).
    expect((await listPods(cluster.rest, ns, 'happy')).length).toBe(2);
    const m = await scrape(op.metricsUrl!);
    expect(metricValue(m, 'xattnjob_jobs_succeeded_total', { namespace: ns })).toBe(1);
  });
});

describe('failures', () => {
  it('restarts the whole gang when one worker fails, and fails the job after backoffLimit restarts', async () => {
    await createJob(cluster.rest, ns, jobManifest('flaky', { workers: 2, runPolicy: { backoffLimit: 1 } }));
    const first = await waitForPods(cluster.rest, ns, 'flaky', 2, 0);
    await setAllPods(cluster.rest, ns, first, { phase: 'Running' });
    await waitForPhase(cluster.rest, ns, 'flaky', 'Running');

    await setPodPhase(cluster.rest, ns, 'flaky-worker-1', { phase: 'Failed', exitCode: 1 });
    const restarting = await waitForJob(cluster.rest, ns, 'flaky', 'restarts 1', (j) => j.status?.restarts === 1);
    expect(restarting.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Restarting', status: 'True', reason: 'WorkerFailed' }));
    expect(restarting.status!.message).toMatch(/worker 1 \(pod flaky-worker-1\) failed with exit code 1/);
    // Both pods are replaced, including the healthy rank 0: a gang restarts whole.
    const second = await waitForPods(cluster.rest, ns, 'flaky', 2, 1);
    expect(second.map((p) => p.metadata.uid)).not.toContain(first[0].metadata.uid);
    expect(second.map((p) => p.metadata.uid)).not.toContain(first[1].metadata.uid);

    await setAllPods(cluster.rest, ns, second, { phase: 'Running' });
    const back = await waitForPhase(cluster.rest, ns, 'flaky', 'Running');
    expect(back.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Restarting', status: 'False' }));

    await setPodPhase(cluster.rest, ns, 'flaky-worker-0', { phase: 'Failed', exitCode: 137, reason: 'OOMKilled' });
    const failed = await waitForPhase(cluster.rest, ns, 'flaky', 'Failed');
    expect(failed.status).toMatchObject({ reason: 'BackoffLimitExceeded', restarts: 1 });
    expect(failed.status!.conditions).toContainEqual(expect.objectContaining({ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }));
    // cleanPodPolicy Running: the still-running rank 1 is deleted, the failed rank 0 is kept.
    await waitFor('running pod deleted', async () => (await listPods(cluster.rest, ns, 'flaky')).map((p) => p.metadata.name).join() === 'flaky-worker-0');
    const reasons = (await listEvents(cluster.rest, ns, 'flaky')).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Restarting', 'BackoffLimitExceeded']));
    expect(metricValue(await scrape(op.metricsUrl!), 'xattnjob_jobs_restarted_total', { namespace: ns })).toBeGreaterThanOrEqual(1);
  });

  it('fails at once on an exit code that failurePolicy marks FailJob', async () => {
    await createJob(cluster.rest, ns, jobManifest('permanent', { workers: 2, failurePolicy: { rules: [{ action: 'FailJob', exitCodes: [2] }] } }));
    const pods = await waitForPods(cluster.rest, ns, 'permanent', 2);
    await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
    await setPodPhase(cluster.rest, ns, 'permanent-worker-0', { phase: 'Failed', exitCode: 2 });
    const failed = await waitForPhase(cluster.rest, ns, 'permanent', 'Failed');
    expect(failed.status!.reason).toBe('PodFailurePolicy');
    expect(failed.status!.restarts ?? 0).toBe(0);
  });

  it('treats a worker deleted under a running gang as a failure and restarts the gang', async () => {
    await createJob(cluster.rest, ns, jobManifest('lost', { workers: 2 }));
    const pods = await waitForPods(cluster.rest, ns, 'lost', 2, 0);
    await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
    await waitForPhase(cluster.rest, ns, 'lost', 'Running');
    await cluster.rest.request('DELETE', `/api/v1/namespaces/${ns}/pods/lost-worker-1`);
    const j = await waitForJob(cluster.rest, ns, 'lost', 'restart after a lost worker', (x) => x.status?.restarts === 1);
    expect(j.status!.message).toMatch(/worker 1 .* (missing|deleted)/);
    await waitForPods(cluster.rest, ns, 'lost', 2, 1);
    expect((await getJob(cluster.rest, ns, 'lost')).status!.phase).not.toBe('Failed');
  });
});
