// scripts/gpu-device.sh (the GPU machine's runner): before touching the GPU it names an unknown mode and the
// bundle its mode needs that was not carried, and asks only for that mode's bundles.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/gpu-device.sh', import.meta.url));
let dir = '';
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

/** Runs the script in a scratch checkout holding only the given bundles; a stand-in nvidia-smi marks reaching the GPU. */
function runWith(mode: string, bundles: string[]) {
  dir = mkdtempSync(path.join(tmpdir(), 'gpu-device-'));
  mkdirSync(path.join(dir, 'scripts'));
  mkdirSync(path.join(dir, 'dist'));
  copyFileSync(script, path.join(dir, 'scripts/gpu-device.sh'));
  for (const b of bundles) writeFileSync(path.join(dir, 'dist', `${b}.mjs`), '');
  mkdirSync(path.join(dir, 'bin'));
  writeFileSync(path.join(dir, 'bin/nvidia-smi'), '#!/bin/sh\necho "GPU 0: stand-in"\nexit 1\n', { mode: 0o755 });
  const r = spawnSync('bash', ['scripts/gpu-device.sh', mode], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: `${path.join(dir, 'bin')}:/usr/bin:/bin`, OUT: path.join(dir, 'out') },
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe('gpu-device.sh', () => {
  it('names an unknown mode before it touches the GPU', () => {
    const r = runWith('benchmark', []);
    expect(r.status).toBe(2);
    expect(r.output).toContain("unknown mode 'benchmark': expected test, bench, train or all");
    expect(r.output).not.toContain('GPU 0: stand-in');
  });

  it("names the missing bundle of the mode's own set", () => {
    const r = runWith('all', ['test-gpu', 'xattn']);
    expect(r.status).toBe(1);
    expect(r.output).toContain("dist/bench-gpu.mjs is missing: run 'npm run bundle'");
    expect(r.output).not.toContain('GPU 0: stand-in');
  });

  it('asks a bench-only call for the bench bundle alone', () => {
    // Past the bundle check the script reaches for the GPU (the stand-in), then fails to build without one.
    const r = runWith('bench', ['bench-gpu']);
    expect(r.output).not.toContain('is missing');
    expect(r.output).toContain('GPU 0: stand-in');
  });
});
