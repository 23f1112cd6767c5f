// Gang scheduling adapters: what each scheduler needs so that all workers start together or not
// at all (a half-started gang holds GPUs while it waits for peers that never come).
import type { XAttnJob } from '../../crds/types.js';
import { podGroupName } from '../names.js';
import { childMeta } from './meta.js';
import { scaleResources } from './quantity.js';

export const PODGROUP_API = { podgroup: 'scheduling.x-k8s.io/v1alpha1', volcano: 'scheduling.volcano.sh/v1beta1' } as const;
export const LABEL_SCHED_PLUGINS_GROUP = 'scheduling.x-k8s.io/pod-group';
export const ANNOTATION_VOLCANO_GROUP = 'scheduling.k8s.io/group-name';
export const LABEL_KUEUE_QUEUE = 'kueue.x-k8s.io/queue-name';
export const LABEL_KUEUE_GROUP = 'kueue.x-k8s.io/pod-group-name';
export const ANNOTATION_KUEUE_TOTAL = 'kueue.x-k8s.io/pod-group-total-count';

/** True when the job needs a PodGroup object next to its pods. */
export function usesPodGroup(job: XAttnJob): boolean {
  return job.spec.scheduling.gang === 'podgroup' || job.spec.scheduling.gang === 'volcano';
}

export function gangPodLabels(job: XAttnJob, attempt: number): Record<string, string> {
  const s = job.spec.scheduling;
  const name = job.metadata.name;
  if (s.gang === 'podgroup') return { [LABEL_SCHED_PLUGINS_GROUP]: podGroupName(name) };
  // Kueue admits one workload per pod group; a restarted gang is a new group.
  if (s.gang === 'kueue') return { [LABEL_KUEUE_QUEUE]: s.queueName!, [LABEL_KUEUE_GROUP]: `${name}-${attempt}` };
  return {};
}

export function gangPodAnnotations(job: XAttnJob): Record<string, string> {
  const s = job.spec.scheduling;
  if (s.gang === 'volcano') return { [ANNOTATION_VOLCANO_GROUP]: podGroupName(job.metadata.name) };
  if (s.gang === 'kueue') return { [ANNOTATION_KUEUE_TOTAL]: String(job.spec.workers) };
  return {};
}

export function schedulerName(job: XAttnJob): string | undefined {
  const s = job.spec.scheduling;
  return s.schedulerName ?? (s.gang === 'volcano' ? 'volcano' : undefined);
}

/** The PodGroup of a podgroup or volcano gang: all workers, with the whole gang's requests. */
export function buildPodGroup(job: XAttnJob, podRequests: Record<string, string | number>): Record<string, any> | undefined {
  if (!usesPodGroup(job)) return undefined;
  const s = job.spec.scheduling;
  const minResources = scaleResources(podRequests, job.spec.workers);
  const spec: Record<string, unknown> = { minMember: job.spec.workers, minResources };
  if (s.gang === 'podgroup') spec.scheduleTimeoutSeconds = s.scheduleTimeoutSeconds;
  if (s.gang === 'volcano') {
    if (s.queueName) spec.queue = s.queueName;
    if (s.priorityClassName) spec.priorityClassName = s.priorityClassName;
  }
  return {
    apiVersion: PODGROUP_API[s.gang as 'podgroup' | 'volcano'],
    kind: 'PodGroup',
    metadata: childMeta(job, podGroupName(job.metadata.name)),
    spec,
  };
}
