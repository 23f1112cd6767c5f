// Reads and checks the worker's environment contract (crds/env.ts) once, at the edge.
import { z } from 'zod';
import { ENV, type RankEnv } from '../../crds/env.js';
import { XattnError } from '../errors.js';

const int = (name: string, min: number) =>
  z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be an integer`).min(min, `${name} must be >= ${min}`);

const schema = z
  .object({
    [ENV.masterAddr]: z.string().min(1).default('127.0.0.1'),
    [ENV.masterPort]: int(ENV.masterPort, 1).max(65535).default(29500),
    [ENV.worldSize]: int(ENV.worldSize, 1).default(1),
    [ENV.rank]: int(ENV.rank, 0).default(0),
    [ENV.localRank]: int(ENV.localRank, 0).optional(),
    [ENV.localWorldSize]: int(ENV.localWorldSize, 1).optional(),
    [ENV.nodeRank]: int(ENV.nodeRank, 0).optional(),
    [ENV.jobName]: z.string().min(1).default('xattn'),
    [ENV.config]: z.string({ error: `${ENV.config} must name the job manifest file` }).min(1),
    [ENV.checkpointDir]: z.string().min(1).optional(),
    [ENV.metricsPort]: int(ENV.metricsPort, 0).max(65535).default(0),
    [ENV.jobToken]: z.string().min(16, `${ENV.jobToken} must be at least 16 characters`).optional(),
    [ENV.podHostname]: z.string().min(1).optional(),
  })
  .refine((e) => e[ENV.rank] < e[ENV.worldSize], { message: `${ENV.rank} must be < ${ENV.worldSize}` });

export function readRankEnv(env: NodeJS.ProcessEnv = process.env): RankEnv {
  const picked = Object.fromEntries(Object.values(ENV).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const r = schema.safeParse(picked);
  if (!r.success) throw new XattnError('XATTN_E_ENV', `invalid worker environment: ${z.prettifyError(r.error)}`);
  const e = r.data as Record<string, any>;
  return {
    masterAddr: e[ENV.masterAddr],
    masterPort: e[ENV.masterPort],
    worldSize: e[ENV.worldSize],
    rank: e[ENV.rank],
    localRank: e[ENV.localRank] ?? 0,
    localWorldSize: e[ENV.localWorldSize] ?? 1,
    nodeRank: e[ENV.nodeRank] ?? e[ENV.rank],
    jobName: e[ENV.jobName],
    config: e[ENV.config],
    checkpointDir: e[ENV.checkpointDir],
    metricsPort: e[ENV.metricsPort],
    jobToken: e[ENV.jobToken],
    podHostname: e[ENV.podHostname],
  };
}
