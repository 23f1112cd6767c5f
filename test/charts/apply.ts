// Applies rendered chart objects to a real API server the way `kubectl apply --server-side` does:
// REST paths from discovery, strict field validation, optionally as a dry run.
import type { KubeRest } from '../../operator/kube/rest.js';
import type { K8sObject } from './helm.js';

interface Resource {
  plural: string;
  namespaced: boolean;
}

const discovered = new Map<string, Map<string, Resource>>();

async function resourceOf(rest: KubeRest, apiVersion: string, kind: string): Promise<Resource> {
  let kinds = discovered.get(apiVersion);
  if (!kinds) {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await rest.get(path);
    kinds = new Map();
    for (const r of list.resources ?? []) if (!r.name.includes('/')) kinds.set(r.kind, { plural: r.name, namespaced: r.namespaced });
    discovered.set(apiVersion, kinds);
  }
  const r = kinds.get(kind);
  if (!r) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
  return r;
}

/** Forget discovery (after installing CRDs). */
export function resetDiscovery(): void {
  discovered.clear();
}

export function objectPath(o: K8sObject, r: Resource): string {
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const ns = r.namespaced ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${r.plural}/${o.metadata.name}`;
}

export interface ApplyFailure {
  object: string;
  message: string;
}

/** Server-side applies each object; returns what the server refused (empty when all were accepted). */
export async function applyAll(rest: KubeRest, objs: K8sObject[], o: { dryRun: boolean; fieldManager?: string }): Promise<ApplyFailure[]> {
  const failures: ApplyFailure[] = [];
  for (const obj of objs) {
    const name = `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
    try {
      const r = await resourceOf(rest, obj.apiVersion, obj.kind);
      if (r.namespaced && !obj.metadata.namespace) throw new Error('namespaced object rendered without metadata.namespace');
      await rest.request('PATCH', objectPath(obj, r), {
        body: obj,
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: o.fieldManager ?? 'helm', force: true, fieldValidation: 'Strict', dryRun: o.dryRun ? 'All' : undefined },
      });
    } catch (e) {
      failures.push({ object: name, message: (e as Error).message });
    }
  }
  return failures;
}

export async function ensureNamespaces(rest: KubeRest, names: string[]): Promise<void> {
  for (const name of names) {
    await rest.request('PATCH', `/api/v1/namespaces/${name}`, {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: 'xattn-tests', force: true },
    });
  }
}
