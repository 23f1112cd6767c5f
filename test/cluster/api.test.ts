// The XAttnJob API as the real API server enforces it: the CRD installs, every example is
// accepted, bad manifests are refused with messages a user understands (and crds/validate.ts
// refuses them the same way), immutable fields stay fixed, printer columns read status.phase.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestError, validateXAttnJob } from '../../crds/validate.js';
import { KubeApiError } from '../../operator/kube/rest.js';
import { JOBS, resourcePath } from '../../operator/kube/resources.js';
import { startCluster, type TestCluster } from './harness/cluster.js';
import { createJob, createNamespace, jobManifest } from './harness/kube.js';

let cluster: TestCluster;
let ns: string;

beforeAll(async () => {
  cluster = await startCluster();
  ns = await createNamespace(cluster.rest, 'api');
});
afterAll(async () => {
  await cluster?.stop();
});

async function rejection(manifest: Record<string, any>): Promise<KubeApiError> {
  try {
    await createJob(cluster.rest, ns, manifest);
  } catch (e) {
    if (e instanceof KubeApiError) return e;
    throw e;
  }
  throw new Error(`the API server accepted ${manifest.metadata.name}`);
}

function localProblems(manifest: Record<string, any>): string {
  try {
    validateXAttnJob(manifest);
  } catch (e) {
    if (e instanceof ManifestError) return e.message;
    throw e;
  }
  return '(accepted)';
}

describe('examples', () => {
  const dir = path.resolve(__dirname, '../../examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('has the examples this suite must cover', () => {
    expect(files).toContain('cluster-llama.yaml');
    expect(files).toContain('quickstart.yaml');
  });

  it.each(files)('%s is accepted by the API server with the same defaults as crds/validate.ts', async (file) => {
    const manifest = parse(readFileSync(path.join(dir, file), 'utf8'));
    const local = validateXAttnJob(manifest, file);
    const created = await createJob(cluster.rest, ns, manifest);
    expect(created.metadata.uid).toBeTruthy();
    expect(created.spec).toEqual(local.spec);
  });
});

describe('invalid manifests are rejected by schema and CEL rules', () => {
  const cases: [string, Record<string, any>, RegExp][] = [
    ['heads not divisible by kvHeads', jobManifest('bad-gqa', { model: { heads: 8, kvHeads: 3 } }), /model\.heads must be divisible by model\.kvHeads/],
    ['zero workers', jobManifest('bad-workers', { workers: 0 }), /spec\.workers.*greater than or equal to 1/],
    ['unknown algorithm', jobManifest('bad-algo', { attention: { algorithm: 'flash' } }), /spec\.attention\.algorithm.*"flash"/],
    ['kueue without a queue', jobManifest('bad-kueue', { scheduling: { gang: 'kueue' } }), /scheduling\.queueName is required when scheduling\.gang is kueue/],
    ['name starting with a digit', jobManifest('9lives'), /metadata\.name must start with a lowercase letter/],
    ['name too long for worker pod names', jobManifest('a'.repeat(52)), /at most 51 characters/],
    ['metrics port equal to master port', jobManifest('bad-ports', { metrics: { port: 29500 } }), /metrics\.port must differ from networking\.masterPort/],
    ['fewer visual tokens than ranks', jobManifest('bad-shards', { workers: 4, workload: { visualTokens: 3 } }), /must each be at least the world size/],
    ['world size above the limit', jobManifest('bad-world', { workers: 1024, gpusPerWorker: 16, workload: { textTokens: 20000, visualTokens: 20000 } }), /world size \(workers × gpusPerWorker\) must be between 1 and 8192/],
    ['NCCL env key without prefix', jobManifest('bad-nccl', { networking: { ncclEnv: { FOO: '1' } } }), /ncclEnv keys must start with NCCL_/],
    ['GPUs given as a resource', jobManifest('bad-gpu', { resources: { limits: { 'nvidia.com/gpu': 8 } } }), /set GPUs with spec\.gpusPerWorker/],
    ['safetensors without a path', jobManifest('bad-data', { workload: { data: { source: 'safetensors' } } }), /workload\.data\.path is required/],
    ['zero learning rate', jobManifest('bad-lr', { workload: { learningRate: 0 } }), /workload\.learningRate must be greater than 0/],
  ];

  it.each(cases)('%s', async (_what, manifest, message) => {
    const err = await rejection(manifest);
    expect(err.status).toBe(422);
    expect(err.message).toMatch(message);
  });

  // The CEL rules are mirrored in crds/validate.ts so `xattn validate` and `xattn run` agree with the cluster.
  it.each(cases.filter(([w]) => !['zero workers', 'unknown algorithm'].includes(w)))('crds/validate.ts also refuses: %s', (_what, manifest, message) => {
    expect(localProblems(manifest)).toMatch(message);
  });
});

describe('updates', () => {
  it('refuses to change workers, gpusPerWorker, model, workload or attention, and allows runPolicy changes', async () => {
    await createJob(cluster.rest, ns, jobManifest('immutable', { model: { heads: 8, kvHeads: 2 } }));
    const path_ = resourcePath(JOBS, ns, 'immutable');
    const patch = (spec: Record<string, unknown>) => cluster.rest.request('PATCH', path_, { body: { spec }, contentType: 'application/merge-patch+json' });
    await expect(patch({ workers: 3 })).rejects.toThrow(/workers and gpusPerWorker are immutable/);
    await expect(patch({ gpusPerWorker: 1 })).rejects.toThrow(/workers and gpusPerWorker are immutable/);
    await expect(patch({ model: { heads: 16 } })).rejects.toThrow(/model, workload and attention are immutable/);
    await expect(patch({ attention: { algorithm: 'ring' } })).rejects.toThrow(/model, workload and attention are immutable/);
    const ok = await patch({ runPolicy: { suspend: true, backoffLimit: 5 } });
    expect(ok.spec.runPolicy).toMatchObject({ suspend: true, backoffLimit: 5 });
  });
});

describe('printer columns', () => {
  it('shows phase from status.phase, not from the last condition', async () => {
    await createJob(cluster.rest, ns, jobManifest('columns', { workers: 2, gpusPerWorker: 4 }));
    const p = resourcePath(JOBS, ns, 'columns');
    // The last condition says Suspended (False, after a resume): a column built on it would lie.
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    await cluster.rest.request('PATCH', `${p}/status`, {
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: 'Running', reason: 'AllWorkersRunning', workersReadyText: '2/2', restarts: 1, worldSize: 8,
          conditions: [
            { type: 'Running', status: 'True', reason: 'AllWorkersRunning', message: '', lastTransitionTime: now },
            { type: 'Suspended', status: 'False', reason: 'Resumed', message: '', lastTransitionTime: now },
          ],
        },
      },
    });
    // kubectl get asks for the Table form; the server renders the CRD's printer columns.
    const table = await cluster.rest.get(p, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
    const names = table.columnDefinitions.map((c: any) => c.name);
    expect(names).toEqual(['Name', 'Phase', 'Ready', 'Restarts', 'Algorithm', 'Age', 'World', 'Model', 'Reason']);
    const row = Object.fromEntries(names.map((n: string, i: number) => [n, table.rows[0].cells[i]]));
    expect(row).toMatchObject({ Name: 'columns', Phase: 'Running', Ready: '2/2', Restarts: 1, Algorithm: 'lv-xattn', World: 8, Model: 'custom', Reason: 'AllWorkersRunning' });
  });
});
