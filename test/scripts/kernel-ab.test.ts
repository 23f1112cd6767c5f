// scripts/kernel-ab.py (the GPU machine's kernel A/B runner) against stand-in binaries: variants run in
// turn every round, the table holds each timing's median, and a failing check stops the run naming it.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/kernel-ab.py', import.meta.url));
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A build/exp with one stand-in bench per variant: its n-th run reports fwd = base + n ms (n from 1) and
 * logs the run; its check prints `checkLine` and exits with `checkCode`. */
function exp(variants: Record<string, { base: number; checkLine?: string; checkCode?: number }>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-ab-'));
  dirs.push(root);
  for (const [name, v] of Object.entries(variants)) {
    const dir = path.join(root, 'build/exp', name);
    mkdirSync(dir, { recursive: true });
    const bench = `#!/bin/bash
echo ${name} >> "${root}/runs.log"
n=$(grep -c . "${root}/runs-${name}.log" 2>/dev/null || echo 0); echo x >> "${root}/runs-${name}.log"; n=$((n + 1))
echo "$*" > "${root}/args-${name}.txt"
for p in sm90 mma; do  # like a bench built before it took a path list: every path
echo "{\\"device\\":\\"Stand-in GPU\\",\\"shape\\":\\"H2/Hkv1 d64 Lq8 Lkv16\\",\\"path\\":\\"$p\\",\\"ours_fwd_ms\\":$((${v.base} + n)),\\"ours_fwd_tflops\\":1,\\"ours_fwdbwd_ms\\":7,\\"ours_fwdbwd_tflops\\":1,\\"ours_bwd_kernels_ms\\":5,\\"ours_bwd_write_ms\\":4}"
done
`;
    writeFileSync(path.join(dir, 'bench'), bench);
    writeFileSync(path.join(dir, 'check'), `#!/bin/bash\necho "${v.checkLine ?? '54 passed, 0 failed'}"\nexit ${v.checkCode ?? 0}\n`);
    chmodSync(path.join(dir, 'bench'), 0o755);
    chmodSync(path.join(dir, 'check'), 0o755);
  }
  return root;
}

const run = (cwd: string, args: string[]) =>
  spawnSync('python3', [script, ...args], { cwd, env: { ...process.env, OUT: path.join(cwd, 'out') }, encoding: 'utf8', timeout: 30_000 });

describe('kernel-ab.py', () => {
  it('runs the variants in turn each round, the order turning round, and prints the medians per variant', () => {
    const root = exp({ base: { base: 10 }, fast: { base: 0 } });
    const r = run(root, ['--rounds', '3', '--check']);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(path.join(root, 'runs.log'), 'utf8').trim().split('\n')).toEqual(['base', 'fast', 'fast', 'base', 'base', 'fast']);
    const table = readFileSync(path.join(root, 'out/ab.txt'), 'utf8');
    expect(table).toMatch(/^Stand-in GPU: median ms of 3 rounds/);
    // fwd runs 11, 12, 13 (median 12) and 1, 2, 3 (median 2)
    expect(table).toMatch(/H2\/Hkv1 d64 Lq8 Lkv16\s+sm90\s+base\s+12\.000\s+5\.000\s+4\.000\s+7\.000/);
    expect(table).toMatch(/H2\/Hkv1 d64 Lq8 Lkv16\s+sm90\s+fast\s+2\.000\s+5\.000\s+4\.000\s+7\.000/);
    expect(readFileSync(path.join(root, 'out/ab.jsonl'), 'utf8').trim().split('\n')).toHaveLength(6);
    // The portable path is left out unless asked for, and the bench is told which paths to time.
    expect(table).not.toMatch(/\bmma\b/);
    expect(readFileSync(path.join(root, 'args-base.txt'), 'utf8').trim().split(' ').at(-1)).toBe('sm90,sm90lag0');
  });

  it('times the paths asked for', () => {
    const root = exp({ only: { base: 0 } });
    const r = run(root, ['--rounds', '1', '--paths', 'mma']);
    expect(r.status, r.stderr).toBe(0);
    const table = readFileSync(path.join(root, 'out/ab.txt'), 'utf8');
    expect(table).toMatch(/\smma\s+only\s/);
    expect(table).not.toMatch(/\bsm90\b/);
    expect(readFileSync(path.join(root, 'args-only.txt'), 'utf8').trim().split(' ').at(-1)).toBe('mma');
  });

  it('stops before timing when a variant fails its check, naming it', () => {
    const root = exp({ good: { base: 0 }, bad: { base: 0, checkLine: '53 passed, 1 failed', checkCode: 1 } });
    const r = run(root, ['--check']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('check bad failed');
    expect(() => readFileSync(path.join(root, 'runs.log'))).toThrow();
  });
});
