// Worker pod i of a job: the env contract, the job config, a memory-backed /dev/shm, GPUs, the
// stable hostname that MASTER_ADDR and XATTN_POD_HOSTNAME name, and the gang's scheduling hints.
import type { V1Affinity, V1Container, V1Pod, V1Toleration, V1ResourceRequirements, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { XAttnJob } from '../../crds/types.js';
import {
  ANNOTATION_WORLD_SIZE,
  CHECKPOINT_DIR,
  CONFIG_MOUNT_DIR,
  LABEL_ATTEMPT,
  LABEL_COMPONENT,
  LABEL_NODE_RANK,
  WORKER_CONTAINER,
  configMapName,
  podName,
  serviceName,
} from '../names.js';
import { worldSize } from '../../crds/types.js';
import { workerEnvVars } from './env.js';
import { gangPodAnnotations, gangPodLabels, schedulerName } from './gang.js';
import { childMeta } from './meta.js';

export const GPU_RESOURCE = 'nvidia.com/gpu';
export const WORKER_COMMAND = ['xattn', 'worker'];
/** Time for SIGTERM to write a final checkpoint before the kubelet kills the worker. */
export const TERMINATION_GRACE_SECONDS = 120;

/** Container resources: the user's, plus GPUs as equal requests and limits (extended resources need both). */
export function workerResources(job: XAttnJob): V1ResourceRequirements {
  const requests: Record<string, string> = stringify(job.spec.resources?.requests);
  const limits: Record<string, string> = stringify(job.spec.resources?.limits);
  const gpus = job.spec.gpusPerWorker;
  if (gpus > 0) requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = String(gpus);
  const out: V1ResourceRequirements = {};
  if (Object.keys(requests).length) out.requests = requests;
  if (Object.keys(limits).length) out.limits = limits;
  return out;
}

function stringify(list: Record<string, string | number> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(list ?? {}).map(([k, v]) => [k, String(v)]));
}

function volumes(job: XAttnJob): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const vols: V1Volume[] = [
    { name: 'config', configMap: { name: configMapName(job.metadata.name) } },
    { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: job.spec.networking.shmSize } },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: CONFIG_MOUNT_DIR, readOnly: true },
    { name: 'dshm', mountPath: '/dev/shm' },
  ];
  const claim = job.spec.checkpoint.claimName;
  if (claim) {
    vols.push({ name: 'checkpoints', persistentVolumeClaim: { claimName: claim } });
    mounts.push({ name: 'checkpoints', mountPath: CHECKPOINT_DIR });
  }
  return { volumes: vols, mounts };
}

export function buildWorkerPod(job: XAttnJob, index: number, attempt: number): V1Pod {
  const { spec } = job;
  const name = job.metadata.name;
  const { volumes: vols, mounts } = volumes(job);
  const container: V1Container = {
    name: WORKER_CONTAINER,
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy,
    command: WORKER_COMMAND,
    env: workerEnvVars(job, index),
    ports: [
      { name: 'rendezvous', containerPort: spec.networking.masterPort, protocol: 'TCP' },
      { name: 'metrics', containerPort: spec.metrics.port, protocol: 'TCP' },
    ],
    resources: workerResources(job),
    volumeMounts: mounts,
  };
  const labels = {
    [LABEL_COMPONENT]: 'worker',
    [LABEL_NODE_RANK]: String(index),
    [LABEL_ATTEMPT]: String(attempt),
    ...gangPodLabels(job, attempt),
  };
  const annotations = {
    [ANNOTATION_WORLD_SIZE]: String(worldSize(spec)),
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(spec.metrics.port),
    'prometheus.io/path': '/metrics',
    ...gangPodAnnotations(job),
  };
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: childMeta(job, podName(name, index), labels, annotations),
    spec: {
      // The operator restarts the whole gang itself; a kubelet restart of one rank would rejoin nothing.
      restartPolicy: 'Never',
      hostname: podName(name, index),
      subdomain: serviceName(name),
      // Many Services in a namespace would otherwise add thousands of variables to every worker.
      enableServiceLinks: false,
      terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
      containers: [container],
      volumes: vols,
    },
  };
  const podSpec = pod.spec!;
  const s = spec.scheduling;
  if (spec.networking.hostNetwork) {
    podSpec.hostNetwork = true;
    podSpec.dnsPolicy = 'ClusterFirstWithHostNet';
  }
  const scheduler = schedulerName(job);
  if (scheduler) podSpec.schedulerName = scheduler;
  if (s.priorityClassName) podSpec.priorityClassName = s.priorityClassName;
  if (s.nodeSelector) podSpec.nodeSelector = { ...s.nodeSelector };
  if (s.tolerations) podSpec.tolerations = structuredClone(s.tolerations) as V1Toleration[];
  if (s.affinity) podSpec.affinity = structuredClone(s.affinity) as V1Affinity;
  if (spec.imagePullSecrets?.length) podSpec.imagePullSecrets = spec.imagePullSecrets.map((n) => ({ name: n }));
  return pod;
}
