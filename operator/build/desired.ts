// job -> every object the operator keeps for it (pods are per attempt and built on demand).
import type { V1ConfigMap, V1Pod, V1Service } from '@kubernetes/client-node';
import type { XAttnJob } from '../../crds/types.js';
import { buildConfigMap } from './config.js';
import { buildPodGroup } from './gang.js';
import { buildWorkerPod, workerResources } from './pod.js';
import { buildService } from './service.js';

export interface DesiredInfra {
  service: V1Service;
  configMap: V1ConfigMap;
  /** scheduler-plugins or Volcano PodGroup, when the job asks for that gang. */
  podGroup?: Record<string, any>;
}

export function desiredInfra(job: XAttnJob): DesiredInfra {
  const podGroup = buildPodGroup(job, workerResources(job).requests ?? {});
  return { service: buildService(job), configMap: buildConfigMap(job), ...(podGroup ? { podGroup } : {}) };
}

export function desiredPods(job: XAttnJob, attempt: number): V1Pod[] {
  return Array.from({ length: job.spec.workers }, (_, i) => buildWorkerPod(job, i, attempt));
}
