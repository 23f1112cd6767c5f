// A pod with g > 1 GPUs runs one `xattn worker` that starts g rank processes, one per GPU
// (RANK = NODE_RANK·g + LOCAL_RANK), and fails as soon as any of them fails so the operator
// restarts the gang. Rank processes carry XATTN_GANG_CHILD=1 (as do the local launcher's).
import { fork, type ChildProcess } from 'node:child_process';
import { ENV } from '../../crds/env.js';
import { XattnError } from '../errors.js';

export const GANG_CHILD = 'XATTN_GANG_CHILD';

/** True when this process must fan out into LOCAL_WORLD_SIZE rank processes. */
export function needsFanOut(env: NodeJS.ProcessEnv): boolean {
  return Number(env[ENV.localWorldSize] ?? 1) > 1 && env[GANG_CHILD] !== '1';
}

/** The environment of local rank i of this pod (pure). */
export function gangChildEnv(env: NodeJS.ProcessEnv, localRank: number): NodeJS.ProcessEnv {
  const g = Number(env[ENV.localWorldSize]);
  const node = Number(env[ENV.nodeRank] ?? 0);
  const port = Number(env[ENV.metricsPort] ?? 0);
  return {
    ...env,
    [GANG_CHILD]: '1',
    [ENV.rank]: String(node * g + localRank),
    [ENV.localRank]: String(localRank),
    // Each rank serves its own /metrics on the next port up (0 keeps metrics off).
    [ENV.metricsPort]: String(port ? port + localRank : 0),
  };
}

export async function runGang(entry: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const g = Number(env[ENV.localWorldSize]);
  const children: ChildProcess[] = [];
  let failure: XattnError | undefined;
  const stopAll = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGTERM'));
  const forward = () => stopAll();
  process.on('SIGTERM', forward);
  try {
    await Promise.all(
      Array.from({ length: g }, (_, i) => {
        const child = fork(entry, ['worker'], { env: gangChildEnv(env, i), stdio: 'inherit' });
        children.push(child);
        return new Promise<void>((resolve) =>
          child.on('exit', (code, signal) => {
            if (code !== 0 && !failure) {
              failure = new XattnError('XATTN_E_WORKER_FAILED', `local rank ${i} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
              stopAll();
            }
            resolve();
          }),
        );
      }),
    );
  } finally {
    process.off('SIGTERM', forward);
  }
  if (failure) throw failure;
}
