// The worker environment contract (crds/env.ts) for pod i of a job. With gpusPerWorker = g > 1
// the pod runs one `xattn worker` that starts g ranks itself: the pod's RANK and LOCAL_RANK
// describe its first rank (i*g, 0), and `xattn worker` sets RANK = NODE_RANK*g + local rank for
// each process it starts.
import type { V1EnvVar } from '@kubernetes/client-node';
import { ENV, renderEnv, type RankEnv } from '../../crds/env.js';
import { worldSize, type XAttnJob } from '../../crds/types.js';
import { CHECKPOINT_DIR, CONFIG_PATH, TOKEN_KEY, namespaceOf, podDnsName, secretName } from '../names.js';

export function podRankEnv(job: XAttnJob, index: number): RankEnv {
  const { spec } = job;
  const ns = namespaceOf(job);
  const name = job.metadata.name;
  const localWorldSize = Math.max(1, spec.gpusPerWorker);
  return {
    masterAddr: podDnsName(name, ns, 0),
    masterPort: spec.networking.masterPort,
    worldSize: worldSize(spec),
    rank: index * localWorldSize,
    localRank: 0,
    localWorldSize,
    nodeRank: index,
    jobName: name,
    config: CONFIG_PATH,
    checkpointDir: spec.checkpoint.claimName ? CHECKPOINT_DIR : undefined,
    metricsPort: spec.metrics.port,
    podHostname: podDnsName(name, ns, index),
  };
}

/** NCCL settings from spec.networking, in a stable order. */
export function ncclEnv(job: XAttnJob): V1EnvVar[] {
  const net = job.spec.networking;
  const vars: Record<string, string> = { ...(net.ncclEnv ?? {}) };
  if (net.socketIfname) vars.NCCL_SOCKET_IFNAME = net.socketIfname;
  return Object.keys(vars)
    .sort()
    .map((name) => ({ name, value: vars[name]! }));
}

/** Every variable of worker pod i; the job token comes from the job's Secret, never inline. */
export function workerEnvVars(job: XAttnJob, index: number): V1EnvVar[] {
  const contract = Object.entries(renderEnv(podRankEnv(job, index))).map(([name, value]) => ({ name, value }));
  const token: V1EnvVar = {
    name: ENV.jobToken,
    valueFrom: { secretKeyRef: { name: secretName(job.metadata.name), key: TOKEN_KEY } },
  };
  return [...contract, token, ...ncclEnv(job)];
}
