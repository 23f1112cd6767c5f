// A multi-GPU pod fans out into one process per GPU with the right ranks; rank processes never do.
import { describe, expect, it } from 'vitest';
import { gangChildEnv, needsFanOut } from '../../../runtime/worker/gang.js';

describe('worker gang', () => {
  it('fans out only a pod entry with LOCAL_WORLD_SIZE > 1', () => {
    expect(needsFanOut({ LOCAL_WORLD_SIZE: '8' })).toBe(true);
    expect(needsFanOut({ LOCAL_WORLD_SIZE: '1' })).toBe(false);
    expect(needsFanOut({})).toBe(false);
    expect(needsFanOut({ LOCAL_WORLD_SIZE: '8', XATTN_GANG_CHILD: '1' })).toBe(false);
  });

  it('numbers ranks node-major and spreads metrics ports', () => {
    const env = gangChildEnv({ LOCAL_WORLD_SIZE: '4', NODE_RANK: '2', RANK: '8', XATTN_METRICS_PORT: '9400' }, 3);
    expect(env).toMatchObject({ RANK: '11', LOCAL_RANK: '3', XATTN_METRICS_PORT: '9403', XATTN_GANG_CHILD: '1' });
    expect(gangChildEnv({ LOCAL_WORLD_SIZE: '2', NODE_RANK: '0', XATTN_METRICS_PORT: '0' }, 1).XATTN_METRICS_PORT).toBe('0');
  });
});

describe('xattn worker on a 2-GPU-style pod', () => {
  it('starts both local ranks, which rendezvous and finish', async () => {
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const { freePort } = await import('../../../runtime/rendezvous/free-port.js');
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    const env = {
      ...process.env,
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(await freePort()),
      WORLD_SIZE: '2',
      RANK: '0',
      NODE_RANK: '0',
      LOCAL_RANK: '0',
      LOCAL_WORLD_SIZE: '2',
      XATTN_CONFIG: `${root}test/fixtures/manifests/two-steps.yaml`,
      XATTN_JOB_TOKEN: 'a-test-token-of-enough-length',
      XATTN_GANG_CHILD: '',
    };
    const child = spawn(process.execPath, [`${root}bin/xattn.js`, 'worker'], { env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.on('exit', r));
    expect(out).toMatch(/rank 0 of 2 ready/);
    expect(out).toMatch(/rank 1 of 2 ready/);
    expect(code).toBe(0);
  }, 60_000);
});
