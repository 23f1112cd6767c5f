// Jobs for unit tests: defaulted through the same validation the CLI and API server apply.
import { validateXAttnJob } from '../../crds/validate.js';
import type { XAttnJob, XAttnJobStatus } from '../../crds/types.js';
import type { PodView } from '../../operator/status/pods.js';

export function makeJob(spec: Record<string, unknown> = {}, status?: XAttnJobStatus, name = 'demo'): XAttnJob {
  const job = validateXAttnJob({ apiVersion: 'xattn.io/v1alpha1', kind: 'XAttnJob', metadata: { name }, spec: { workers: 2, ...spec } });
  job.metadata = { ...job.metadata, namespace: 'team-a', uid: 'uid-1', generation: 1, resourceVersion: '10' };
  if (status) job.status = status;
  return job;
}

export function pod(index: number, over: Partial<PodView> = {}): PodView {
  return {
    name: `demo-worker-${index}`,
    uid: `pod-${index}-${over.attempt ?? 0}`,
    index,
    attempt: 0,
    ownerUid: 'uid-1',
    phase: 'Pending',
    ready: false,
    terminating: false,
    ...over,
  };
}

export const running = (i: number, attempt = 0): PodView => pod(i, { phase: 'Running', ready: true, attempt });
