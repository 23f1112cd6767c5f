// Least privilege, proven: the chart is applied for real to a kube-apiserver that enforces RBAC,
// and the real `xattn operator` runs with the rendered args and environment and a token of the
// chart's ServiceAccount. It must win its Lease and run a whole job life cycle without one 403;
// and without the gang-scheduling rules a PodGroup job must be refused.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStatus } from '../../operator/kube/rest.js';
import { startCluster, type TestCluster } from '../cluster/harness/cluster.js';
import { createJob, createNamespace, getJob, jobManifest, listEvents, patchJobSpec, setAllPods, setPodPhase, waitForJob, waitForPhase, waitForPods } from '../cluster/harness/kube.js';
import { metricValue, scrape } from '../cluster/harness/operator.js';
import { waitFor } from '../cluster/harness/processes.js';
import { applyAll, ensureNamespaces } from './apply.js';
import { startChartOperator, type ChartOperator } from './chart-operator.js';
import { findObject, renderChart, type K8sObject } from './helm.js';

const RELEASE_NS = 'xattn-system';
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.installCrd(parse(readFileSync(path.join(__dirname, '../cluster/fixtures/podgroup-crd.yaml'), 'utf8')));
  await ensureNamespaces(cluster.rest, [RELEASE_NS]);
});
afterAll(async () => {
  await cluster?.stop();
});

/** Installs the rendered release for real (server-side apply as a cluster admin, as helm would). */
async function install(objs: K8sObject[]): Promise<void> {
  expect(await applyAll(cluster.rest, objs, { dryRun: false })).toEqual([]);
}

/** A kubeconfig that authenticates as the ServiceAccount (a TokenRequest, as the kubelet would mount). */
async function serviceAccountKubeconfig(sa: string, file: string): Promise<string> {
  const tr = await cluster.rest.request('POST', `/api/v1/namespaces/${RELEASE_NS}/serviceaccounts/${sa}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cluster.server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: sa, user: { token: tr.status.token } }],
    contexts: [{ name: 'sa', context: { cluster: 'test', user: sa } }],
    'current-context': 'sa',
  };
  const p = path.join(cluster.dir, file);
  writeFileSync(p, JSON.stringify(cfg));
  return p;
}

/** No request refused: neither a REST call (403) nor a list/watch (its informer would have restarted). */
async function expectNoDenials(op: ChartOperator): Promise<void> {
  const text = await scrape(op.metricsUrl);
  expect(metricValue(text, 'rest_client_requests_total', { code: '403' })).toBe(0);
  expect(metricValue(text, 'xattnjob_informer_restarts_total')).toBe(0);
}

async function startAs(objs: K8sObject[], name: string): Promise<ChartOperator> {
  const sa = findObject(objs, 'Deployment').spec.template.spec.serviceAccountName;
  return startChartOperator(objs, await serviceAccountKubeconfig(sa, `${name}.kubeconfig`), path.join(cluster.dir, `${name}.log`));
}

describe('the operator under the chart RBAC (cluster-wide, gang scheduling on)', () => {
  let op: ChartOperator;
  let ns: string;
  afterAll(async () => op?.stop());

  it('becomes leader through the leader-election Role', async () => {
    const objs = await renderChart({ namespace: RELEASE_NS, set: ['gangScheduling.schedulerPlugins=true'] });
    await install(objs);
    op = await startAs(objs, 'operator-cluster');
    await waitFor('leadership', () => op.isLeader(), 30_000);
    const role = findObject(objs, 'Role');
    const lease = role.rules.find((r: any) => r.resourceNames).resourceNames[0];
    const held = await cluster.rest.get(`/apis/coordination.k8s.io/v1/namespaces/${RELEASE_NS}/leases/${lease}`);
    expect(held.spec.holderIdentity).toBeTruthy();
  });

  it('runs a gang job through create, suspend, resume, restart, success and TTL deletion without a 403', async () => {
    ns = await createNamespace(cluster.rest, 'rbac');
    const podGroup = `/apis/scheduling.x-k8s.io/v1alpha1/namespaces/${ns}/podgroups/gang`;
    await createJob(cluster.rest, ns, jobManifest('gang', { workers: 2, scheduling: { gang: 'podgroup' }, runPolicy: { ttlSecondsAfterFinished: 1 } }));
    await waitForPods(cluster.rest, ns, 'gang', 2, 0);
    for (const p of ['services/gang', 'configmaps/gang-config', 'secrets/gang-token']) await cluster.rest.get(`/api/v1/namespaces/${ns}/${p}`);
    await cluster.rest.get(podGroup);

    // Suspending deletes the pods and the PodGroup; resuming creates both again.
    await patchJobSpec(cluster.rest, ns, 'gang', { runPolicy: { suspend: true } });
    await waitForPhase(cluster.rest, ns, 'gang', 'Suspended');
    await waitFor('PodGroup deleted', () => cluster.rest.get(podGroup).then(() => false, (e) => isStatus(e, 404)), 20_000);
    await patchJobSpec(cluster.rest, ns, 'gang', { runPolicy: { suspend: false } });
    const first = await waitForPods(cluster.rest, ns, 'gang', 2);
    await waitFor('PodGroup recreated', () => cluster.rest.get(podGroup).then(() => true, () => false), 20_000);
    await setAllPods(cluster.rest, ns, first, { phase: 'Running' });
    await waitForPhase(cluster.rest, ns, 'gang', 'Running');
    const attempt = Number(first[0].metadata.labels['xattn.io/restart-attempt']);

    await setPodPhase(cluster.rest, ns, first[0].metadata.name, { phase: 'Failed', exitCode: 137, reason: 'OOMKilled' });
    const second = await waitForPods(cluster.rest, ns, 'gang', 2, attempt + 1);
    await waitForJob(cluster.rest, ns, 'gang', 'one restart', (j) => j.status?.restarts === 1);
    await setAllPods(cluster.rest, ns, second, { phase: 'Succeeded' });
    await waitForPhase(cluster.rest, ns, 'gang', 'Succeeded');
    await waitFor('job deleted after its TTL', () => getJob(cluster.rest, ns, 'gang').then(() => false, (e) => isStatus(e, 404)), 20_000);

    const reasons = (await listEvents(cluster.rest, ns, 'gang')).map((e) => e.reason);
    expect(reasons).toContain('SuccessfulCreatePod');
    await expectNoDenials(op);
    expect(metricValue(await scrape(op.metricsUrl), 'controller_runtime_reconcile_errors_total')).toBe(0);
  });
});

describe('the operator under the chart RBAC (one namespace, gang scheduling off)', () => {
  let op: ChartOperator;
  let ns: string;
  afterAll(async () => op?.stop());

  it('runs a plain job in its namespace with only the namespaced Role', async () => {
    ns = await createNamespace(cluster.rest, 'scoped');
    const objs = await renderChart({ release: 'scoped', namespace: RELEASE_NS, set: [`operator.watchNamespace=${ns}`, 'crds.enabled=false'] });
    expect(objs.some((o) => o.kind === 'ClusterRole' && !o.metadata.name.endsWith('-editor') && !o.metadata.name.endsWith('-viewer'))).toBe(false);
    await install(objs);
    op = await startAs(objs, 'operator-scoped');
    await waitFor('leadership', () => op.isLeader(), 30_000);

    await createJob(cluster.rest, ns, jobManifest('plain', { workers: 2 }));
    const pods = await waitForPods(cluster.rest, ns, 'plain', 2);
    await setAllPods(cluster.rest, ns, pods, { phase: 'Running' });
    await waitForPhase(cluster.rest, ns, 'plain', 'Running');
    await expectNoDenials(op);
  });

  it('is refused the PodGroup of a gang job, and says so on the job', async () => {
    await createJob(cluster.rest, ns, jobManifest('needs-gang', { workers: 2, scheduling: { gang: 'podgroup' } }));
    await waitFor('a 403 on the PodGroup', async () => (await op.forbidden()) > 0, 20_000);
    const events = await waitFor('a FailedCreate event', async () => {
      const evs = (await listEvents(cluster.rest, ns, 'needs-gang')).filter((e) => e.reason === 'FailedCreate');
      return evs.length ? evs : undefined;
    }, 20_000);
    expect(events[0].message).toMatch(/podgroups.*forbidden|forbidden.*podgroups/i);
    expect((await getJob(cluster.rest, ns, 'needs-gang')).status?.phase).not.toBe('Running');
  });
});
