// The environment of each local worker: exactly the operator's contract (crds/env.ts), on loopback.
import { renderEnv, type EnvName } from '../../crds/env.js';
import { GANG_CHILD } from '../worker/gang.js';

export function localWorkerEnv(opts: {
  rank: number;
  worldSize: number;
  masterPort: number;
  jobName: string;
  config: string;
  token: string;
  checkpointDir?: string;
  metricsPort?: number;
}): Record<EnvName | typeof GANG_CHILD, string> {
  const env = renderEnv({
    masterAddr: '127.0.0.1',
    masterPort: opts.masterPort,
    worldSize: opts.worldSize,
    rank: opts.rank,
    localRank: opts.rank,
    localWorldSize: opts.worldSize,
    nodeRank: 0,
    jobName: opts.jobName,
    config: opts.config,
    checkpointDir: opts.checkpointDir,
    // Each local worker serves metrics on its own port: base + rank (0 disables).
    metricsPort: opts.metricsPort ? opts.metricsPort + opts.rank : 0,
    jobToken: opts.token,
  });
  // Each local process is already one rank: it must not fan out like a multi-GPU pod's entry.
  return { ...env, [GANG_CHILD]: '1' };
}
