// REST paths of the kinds the operator touches.
import { GROUP, PLURAL, VERSION } from '../../crds/types.js';

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
}

export const JOBS: ResourceType = { group: GROUP, version: VERSION, plural: PLURAL };
export const PODS: ResourceType = { group: '', version: 'v1', plural: 'pods' };
export const SERVICES: ResourceType = { group: '', version: 'v1', plural: 'services' };
export const CONFIGMAPS: ResourceType = { group: '', version: 'v1', plural: 'configmaps' };
export const SECRETS: ResourceType = { group: '', version: 'v1', plural: 'secrets' };
export const EVENTS: ResourceType = { group: '', version: 'v1', plural: 'events' };
export const LEASES: ResourceType = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };

const KINDS: Record<string, ResourceType> = {
  'v1/Pod': PODS,
  'v1/Service': SERVICES,
  'v1/ConfigMap': CONFIGMAPS,
  'v1/Secret': SECRETS,
  'scheduling.x-k8s.io/v1alpha1/PodGroup': { group: 'scheduling.x-k8s.io', version: 'v1alpha1', plural: 'podgroups' },
  'scheduling.volcano.sh/v1beta1/PodGroup': { group: 'scheduling.volcano.sh', version: 'v1beta1', plural: 'podgroups' },
};

export function resourceFor(apiVersion: string, kind: string): ResourceType {
  const r = KINDS[`${apiVersion}/${kind}`];
  if (!r) throw new Error(`the operator does not manage ${kind} of ${apiVersion}`);
  return r;
}

/** Collection path (name omitted) or object path; namespace omitted lists across all namespaces. */
export function resourcePath(r: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}
