// The documented life cycle with the real helm against a real kube-apiserver: install (NOTES
// included), upgrade from an older chart (the CRD is upgraded with the release, the reason it is
// templated), uninstall (the CRD and the jobs stay: keep policy), and reinstall over the kept CRD.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStatus } from '../../operator/kube/rest.js';
import { startCluster, type TestCluster } from '../cluster/harness/cluster.js';
import { createJob, getJob, jobManifest } from '../cluster/harness/kube.js';
import { waitFor } from '../cluster/harness/processes.js';
import { CHART, REPO, helm } from './helm.js';

const NS = 'xattn-system';
const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/xattnjobs.xattn.io';
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster();
  // The harness installs the CRD itself; start from a cluster without it, as a user would.
  await cluster.rest.request('DELETE', CRD_PATH);
  await waitGone(CRD_PATH);
});
afterAll(async () => {
  await cluster?.stop();
});

async function waitGone(p: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cluster.rest.get(p).then(() => false, (e) => isStatus(e, 404))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p} was not deleted`);
}

const run = async (args: string[]) => {
  const r = await helm([...args, '--kubeconfig', cluster.kubeconfigPath]);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
};

/** The chart as an older release would have shipped it: version 0.0.1, a CRD without the Reason column. */
function olderChart(): string {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'xattn-old-chart-')), 'xattn-operator');
  cpSync(CHART, dir, { recursive: true });
  const chartYaml = parse(readFileSync(path.join(dir, 'Chart.yaml'), 'utf8'));
  writeFileSync(path.join(dir, 'Chart.yaml'), stringify({ ...chartYaml, version: '0.0.1' }));
  const crdFile = path.join(dir, 'files/crds/xattn.io_xattnjobs.yaml');
  const crd = parse(readFileSync(crdFile, 'utf8'));
  const cols = crd.spec.versions[0].additionalPrinterColumns;
  crd.spec.versions[0].additionalPrinterColumns = cols.filter((c: any) => c.name !== 'Reason');
  writeFileSync(crdFile, stringify(crd));
  return dir;
}

const printerColumns = async () => (await cluster.rest.get(CRD_PATH)).spec.versions[0].additionalPrinterColumns.map((c: any) => c.name);

describe('helm install, upgrade, uninstall, reinstall', () => {
  it('installs an older chart version, CRD included, and prints what to do next', async () => {
    const out = await run(['install', 'xattn', olderChart(), '--namespace', NS, '--create-namespace']);
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain('kubectl apply -f examples/quickstart.yaml');
    expect(out).toContain(`kubectl -n ${NS} rollout status deployment/xattn-operator`);
    expect(await printerColumns()).not.toContain('Reason');
    await cluster.rest.get(`/apis/apps/v1/namespaces/${NS}/deployments/xattn-operator`);
  });

  it('upgrades the CRD with the release', async () => {
    const out = await run(['upgrade', 'xattn', CHART, '--namespace', NS, '--set', 'operator.concurrency=8']);
    expect(out).toContain('REVISION: 2');
    expect(await printerColumns()).toContain('Reason');
    const live = await cluster.rest.get(CRD_PATH);
    const want = parse(readFileSync(path.join(REPO, 'crds/xattn.io_xattnjobs.yaml'), 'utf8'));
    expect(live.spec.versions[0].schema).toEqual(want.spec.versions[0].schema);
    const dep = await cluster.rest.get(`/apis/apps/v1/namespaces/${NS}/deployments/xattn-operator`);
    expect(dep.spec.template.spec.containers[0].args).toContain('--concurrency=8');
  });

  it('keeps the CRD and every XAttnJob on uninstall', async () => {
    // The CRD is served again a moment after the upgrade's apply.
    await waitFor('a job created', () => createJob(cluster.rest, 'default', jobManifest('survivor')).catch(() => undefined), 10_000);
    const out = await run(['uninstall', 'xattn', '--namespace', NS]);
    expect(out).toMatch(/kept due to the resource policy[\s\S]*xattnjobs\.xattn\.io/);
    await waitGone(`/apis/apps/v1/namespaces/${NS}/deployments/xattn-operator`);
    expect((await cluster.rest.get(CRD_PATH)).metadata.annotations['helm.sh/resource-policy']).toBe('keep');
    expect((await getJob(cluster.rest, 'default', 'survivor')).metadata.name).toBe('survivor');
  });

  it('reinstalls under the same release name, adopting the kept CRD', async () => {
    const out = await run(['install', 'xattn', CHART, '--namespace', NS]);
    expect(out).toContain('STATUS: deployed');
    expect((await getJob(cluster.rest, 'default', 'survivor')).metadata.name).toBe('survivor');
  });

  it('installs a second release with crds.enabled=false next to it', async () => {
    const out = await run(['install', 'xattn-b', CHART, '--namespace', 'xattn-b', '--create-namespace', '--set', 'crds.enabled=false', '--set', 'rbac.aggregateToDefaultRoles=false']);
    expect(out).toContain('The XAttnJob CRD is not managed by this release');
  });
});
