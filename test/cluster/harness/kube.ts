// Test-side helpers: namespaces, jobs, pods, and a stand-in kubelet that moves pod phases the way
// a real one reports them (through the pods/status subresource).
import { API_VERSION, KIND, type XAttnJob } from '../../../crds/types.js';
import type { KubeRest } from '../../../operator/kube/rest.js';
import { JOBS, PODS, resourcePath } from '../../../operator/kube/resources.js';
import { LABEL_JOB } from '../../../operator/names.js';
import { waitFor } from './processes.js';

let nsCounter = 0;

export async function createNamespace(rest: KubeRest, prefix: string): Promise<string> {
  const name = `${prefix}-${process.pid}-${++nsCounter}`;
  await rest.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
  return name;
}

export function jobManifest(name: string, spec: Record<string, unknown> = {}): Record<string, any> {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: { workers: 2, ...spec } };
}

export async function createJob(rest: KubeRest, ns: string, manifest: Record<string, any>): Promise<XAttnJob> {
  return rest.request('POST', resourcePath(JOBS, ns), { body: { ...manifest, metadata: { ...manifest.metadata, namespace: ns } } });
}

export const getJob = (rest: KubeRest, ns: string, name: string): Promise<XAttnJob> => rest.get(resourcePath(JOBS, ns, name));

export async function patchJobSpec(rest: KubeRest, ns: string, name: string, spec: Record<string, unknown>): Promise<XAttnJob> {
  return rest.request('PATCH', resourcePath(JOBS, ns, name), { body: { spec }, contentType: 'application/merge-patch+json' });
}

export async function listPods(rest: KubeRest, ns: string, job: string): Promise<any[]> {
  const list = await rest.get(resourcePath(PODS, ns), { query: { labelSelector: `${LABEL_JOB}=${job}` } });
  return (list.items ?? []).sort((a: any, b: any) => (a.metadata.name < b.metadata.name ? -1 : 1));
}

export async function waitForPods(rest: KubeRest, ns: string, job: string, count: number, attempt?: number, timeoutMs = 30_000): Promise<any[]> {
  return waitFor(`${count} pods of ${ns}/${job}${attempt === undefined ? '' : ` (attempt ${attempt})`}`, async () => {
    const pods = (await listPods(rest, ns, job)).filter((p) => !p.metadata.deletionTimestamp);
    const wanted = attempt === undefined ? pods : pods.filter((p) => p.metadata.labels['xattn.io/restart-attempt'] === String(attempt));
    return wanted.length === count && pods.length === count ? wanted : undefined;
  }, timeoutMs);
}

export async function waitForJob(rest: KubeRest, ns: string, name: string, what: string, ok: (j: XAttnJob) => boolean, timeoutMs = 30_000): Promise<XAttnJob> {
  let last: XAttnJob | undefined;
  try {
    return await waitFor(`${ns}/${name}: ${what}`, async () => {
      last = await getJob(rest, ns, name);
      return ok(last) ? last : undefined;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast status: ${JSON.stringify(last?.status)}`);
  }
}

export const waitForPhase = (rest: KubeRest, ns: string, name: string, phase: string, timeoutMs?: number) =>
  waitForJob(rest, ns, name, `phase ${phase}`, (j) => j.status?.phase === phase, timeoutMs);

type Outcome = { phase: 'Running'; ready?: boolean } | { phase: 'Succeeded' } | { phase: 'Failed'; exitCode: number; reason?: string };

/** What a kubelet would report for the worker container. */
export async function setPodPhase(rest: KubeRest, ns: string, pod: string, o: Outcome): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const base = { name: 'worker', image: 'ghcr.io/xattn/runtime:0.1.0', imageID: '', restartCount: 0, started: o.phase === 'Running' };
  const state =
    o.phase === 'Running'
      ? { running: { startedAt: now } }
      : { terminated: { exitCode: o.phase === 'Succeeded' ? 0 : o.exitCode, reason: o.phase === 'Succeeded' ? 'Completed' : o.reason ?? 'Error', startedAt: now, finishedAt: now } };
  const ready = o.phase === 'Running' && (o.ready ?? true);
  const status = {
    phase: o.phase,
    startTime: now,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now }],
    containerStatuses: [{ ...base, ready, state }],
  };
  await rest.request('PATCH', resourcePath(PODS, ns, pod, 'status'), { body: { status }, contentType: 'application/merge-patch+json' });
}

export async function setAllPods(rest: KubeRest, ns: string, pods: any[], o: Outcome): Promise<void> {
  for (const p of pods) await setPodPhase(rest, ns, p.metadata.name, o);
}

export async function listEvents(rest: KubeRest, ns: string, job: string): Promise<any[]> {
  const list = await rest.get(`/api/v1/namespaces/${ns}/events`, { query: { fieldSelector: `involvedObject.name=${job}` } });
  return list.items ?? [];
}
