// Names, labels and fixed paths of everything the operator creates for a job: deterministic, so a
// repeated create answers 409 instead of making a second copy.
import type { XAttnJob } from '../crds/types.js';

export const FIELD_MANAGER = 'xattnjob-operator';
export const CONTROLLER_NAME = 'xattnjob';

/** Plain key on purpose: Prometheus keeps it as the target label `xattnjob`. */
export const LABEL_JOB = 'xattnjob';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'xattn-operator';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_NODE_RANK = 'xattn.io/node-rank';
export const LABEL_ATTEMPT = 'xattn.io/restart-attempt';
export const ANNOTATION_WORLD_SIZE = 'xattn.io/world-size';

export const CONFIG_MOUNT_DIR = '/etc/xattn';
export const CONFIG_KEY = 'job.yaml';
export const CONFIG_PATH = `${CONFIG_MOUNT_DIR}/${CONFIG_KEY}`;
export const CHECKPOINT_DIR = '/checkpoints';
export const TOKEN_KEY = 'token';
export const WORKER_CONTAINER = 'worker';

export const serviceName = (job: string): string => job;
export const podName = (job: string, index: number): string => `${job}-worker-${index}`;
export const configMapName = (job: string): string => `${job}-config`;
export const secretName = (job: string): string => `${job}-token`;
export const podGroupName = (job: string): string => job;

/** Stable DNS name of worker pod i through the headless Service. */
export function podDnsName(job: string, namespace: string, index: number): string {
  return `${podName(job, index)}.${serviceName(job)}.${namespace}.svc`;
}

export function namespaceOf(job: Pick<XAttnJob, 'metadata'>): string {
  return job.metadata.namespace ?? 'default';
}

export function jobKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Labels every child object carries; the pod and service informers select on LABEL_MANAGED_BY. */
export function commonLabels(job: string): Record<string, string> {
  return { [LABEL_JOB]: job, [LABEL_MANAGED_BY]: MANAGED_BY };
}
