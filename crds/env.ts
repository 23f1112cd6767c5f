// The environment contract between whoever starts a worker (the operator's pods or the local
// launcher) and the worker itself. Both sides build or read it through these names only.

export const ENV = {
  masterAddr: 'MASTER_ADDR',
  masterPort: 'MASTER_PORT',
  worldSize: 'WORLD_SIZE',
  rank: 'RANK',
  localRank: 'LOCAL_RANK',
  localWorldSize: 'LOCAL_WORLD_SIZE',
  nodeRank: 'NODE_RANK',
  jobName: 'XATTN_JOB_NAME',
  config: 'XATTN_CONFIG',
  checkpointDir: 'XATTN_CHECKPOINT_DIR',
  metricsPort: 'XATTN_METRICS_PORT',
  jobToken: 'XATTN_JOB_TOKEN',
  podHostname: 'XATTN_POD_HOSTNAME',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];

export interface RankEnv {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  localRank: number;
  localWorldSize: number;
  nodeRank: number;
  jobName: string;
  config: string;
  checkpointDir?: string;
  metricsPort: number;
  jobToken?: string;
  podHostname?: string;
}

/** Renders a RankEnv as environment variables (strings), omitting unset optional values. */
export function renderEnv(e: RankEnv): Record<EnvName, string> {
  const out: Partial<Record<EnvName, string>> = {};
  for (const [key, name] of Object.entries(ENV) as [keyof RankEnv, EnvName][]) {
    const v = e[key];
    if (v !== undefined) out[name] = String(v);
  }
  return out as Record<EnvName, string>;
}
