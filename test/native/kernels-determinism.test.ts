// The kernels are bitwise deterministic: repeated runs agree, and so do runs with different numbers of
// CPU threads (child processes with XATTN_CPU_THREADS set); a bad XATTN_CPU_THREADS is a clear error.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { kernelDigest } from './fixtures/kernel-digest.js';

const script = fileURLToPath(new URL('./fixtures/print-kernel-digest.ts', import.meta.url));

function digestInChild(threads: string): { threads?: number; digest?: string; error?: string; message?: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, XATTN_CPU_THREADS: threads },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}');
}

describe('determinism', () => {
  it('gives bitwise identical results on repeated runs', () => {
    expect(kernelDigest()).toEqual(kernelDigest());
  });

  it('gives bitwise identical results with 1, 3 and the default number of threads', () => {
    const here = kernelDigest();
    const one = digestInChild('1');
    const three = digestInChild('3');
    expect([one.threads, three.threads]).toEqual([1, 3]);
    expect(one.digest).toBe(here.digest);
    expect(three.digest).toBe(here.digest);
  });

  it('reports a bad XATTN_CPU_THREADS with a code instead of crashing', () => {
    expect(digestInChild('zero')).toEqual({
      error: 'XATTN_E_INVALID_ARGUMENT',
      message: "XATTN_CPU_THREADS must be an integer in 1..1024, got 'zero'",
    });
  });
});
