// TypeScript view of the XAttnJob API (crds/xattn.io_xattnjobs.yaml is the source of truth;
// test/crds checks that these types and the schema agree on field names).

export const GROUP = 'xattn.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'XAttnJob';
export const PLURAL = 'xattnjobs';

export type DTypeName = 'float32' | 'bfloat16' | 'float16';
export type Algorithm = 'lv-xattn' | 'ring';
export type PartialPrecision = 'auto' | 'float32' | 'float16';
export type ModelPreset = 'custom' | 'llama-3.2-11b-vision' | 'mplug-owl3-7b' | 'openflamingo-9b' | 'tiny';

export interface ModelSpec {
  preset: ModelPreset;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  textHidden?: number;
  visualHidden?: number;
}

export interface WorkloadSpec {
  mode: 'train' | 'benchmark';
  textTokens: number;
  visualTokens: number;
  batch: number;
  dtype: DTypeName;
  steps: number;
  warmupSteps: number;
  learningRate: number;
  seed: number;
  data: { source: 'synthetic' | 'safetensors'; path?: string };
}

export interface FailureRule {
  action: 'Retry' | 'FailJob';
  exitCodes: number[];
}

export interface XAttnJobSpec {
  workers: number;
  gpusPerWorker: number;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: string[];
  model: ModelSpec;
  workload: WorkloadSpec;
  attention: { algorithm: Algorithm; recomputeKV: boolean; keepValues: boolean; partials: PartialPrecision };
  checkpoint: { everySteps: number; keep: number; claimName?: string };
  networking: {
    ncclEnv?: Record<string, string>;
    socketIfname?: string;
    hostNetwork: boolean;
    shmSize: string;
    masterPort: number;
  };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  scheduling: {
    gang: 'none' | 'podgroup' | 'volcano' | 'kueue';
    queueName?: string;
    scheduleTimeoutSeconds: number;
    schedulerName?: string;
    priorityClassName?: string;
    nodeSelector?: Record<string, string>;
    tolerations?: Record<string, unknown>[];
    affinity?: Record<string, unknown>;
  };
  runPolicy: {
    backoffLimit: number;
    activeDeadlineSeconds?: number;
    ttlSecondsAfterFinished?: number;
    suspend: boolean;
    cleanPodPolicy: 'None' | 'Running' | 'All';
  };
  failurePolicy: { rules?: FailureRule[] };
  metrics: { port: number };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type Phase = 'Pending' | 'Created' | 'Running' | 'Restarting' | 'Succeeded' | 'Failed' | 'Suspended';

export type ConditionType = 'Created' | 'Running' | 'Restarting' | 'Succeeded' | 'Failed' | 'Suspended';

export interface XAttnJobStatus {
  phase?: Phase;
  reason?: string;
  message?: string;
  conditions?: Condition[];
  observedGeneration?: number;
  worldSize?: number;
  workersReady?: number;
  workersTotal?: number;
  workersRunning?: number;
  workersSucceeded?: number;
  workersFailed?: number;
  workersReadyText?: string;
  restarts?: number;
  startTime?: string;
  completionTime?: string;
}

export interface XAttnJob {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec: XAttnJobSpec;
  status?: XAttnJobStatus;
}

/** World size: one rank per GPU, or one per worker on CPU. */
export function worldSize(spec: Pick<XAttnJobSpec, 'workers' | 'gpusPerWorker'>): number {
  return spec.workers * Math.max(1, spec.gpusPerWorker);
}
