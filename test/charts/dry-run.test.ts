// Server-side dry-run apply of the rendered chart to a real kube-apiserver (test/cluster/harness):
// admission, defaulting, strict field validation and RBAC object checks, without persisting.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStatus } from '../../operator/kube/rest.js';
import { startCluster, type TestCluster } from '../cluster/harness/cluster.js';
import { applyAll, ensureNamespaces } from './apply.js';
import { findObject, renderChart } from './helm.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster();
  const crds = parseAllDocuments(readFileSync(path.join(__dirname, 'fixtures/monitoring-crds.yaml'), 'utf8')).map((d) => d.toJS());
  for (const crd of crds) await cluster.installCrd(crd);
  await ensureNamespaces(cluster.rest, ['xattn-system', 'ml-team', 'monitoring', 'grafana']);
});
afterAll(async () => {
  await cluster?.stop();
});

describe('server-side dry-run apply of the rendered chart', () => {
  it('accepts every object rendered with the default values', async () => {
    const objs = await renderChart();
    expect(await applyAll(cluster.rest, objs, { dryRun: true })).toEqual([]);
    // A dry run persists nothing.
    const dep = findObject(objs, 'Deployment');
    const gone = await cluster.rest.get(`/apis/apps/v1/namespaces/xattn-system/deployments/${dep.metadata.name}`).then(() => false, (e) => isStatus(e, 404));
    expect(gone).toBe(true);
  });

  it('accepts every object rendered with full.yaml, monitors included', async () => {
    const objs = await renderChart({ values: ['full.yaml'], monitoringApi: true });
    expect(objs.map((o) => o.kind)).toEqual(expect.arrayContaining(['ServiceMonitor', 'PodMonitor', 'Role', 'RoleBinding']));
    expect(await applyAll(cluster.rest, objs, { dryRun: true })).toEqual([]);
  });

  it('accepts every object rendered with minimal.yaml', async () => {
    const objs = await renderChart({ values: ['minimal.yaml'] });
    expect(await applyAll(cluster.rest, objs, { dryRun: true })).toEqual([]);
  });

  it('would refuse a broken object (so the checks above can fail)', async () => {
    const objs = await renderChart();
    const dep = structuredClone(findObject(objs, 'Deployment'));
    dep.spec.template.spec.containers[0].readOnlyRootFilesytem = true; // misspelt field
    const failures = await applyAll(cluster.rest, [dep], { dryRun: true });
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/readOnlyRootFilesytem/);
  });
});
