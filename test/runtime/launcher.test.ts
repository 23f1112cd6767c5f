// `xattn run`: the quickstart works end to end, overrides apply, bad manifests and dead workers end the
// run with a clear error and a non-zero exit, never a hang.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runLocal } from '../../runtime/launcher/run-local.js';
import { Writable } from 'node:stream';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = `${root}bin/xattn.js`;
const QUICKSTART = `${root}examples/quickstart.yaml`;
const fixture = (name: string) => `${root}test/fixtures/manifests/${name}`;

const sink = () => {
  const chunks: string[] = [];
  const stream = new Writable({ write: (c, _e, cb) => (chunks.push(String(c)), cb()) });
  return { stream, text: () => chunks.join('') };
};

function runCli(args: string[], onLine?: (line: string, kill: (pid: number) => void) => void) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, XATTN_TIMEOUT_MS: '8000' } });
  let out = '';
  const feed = (d: Buffer) => {
    out += d;
    for (const line of String(d).split('\n')) onLine?.(line, (pid) => process.kill(pid, 'SIGKILL'));
  };
  child.stdout.on('data', feed);
  child.stderr.on('data', feed);
  return new Promise<{ code: number | null; out: string }>((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

describe('xattn run', () => {
  it('runs the quickstart on two worker processes and summarises it', async () => {
    const out = sink();
    const s = await runLocal(QUICKSTART, { workerEntry: BIN, steps: 2, stdout: out.stream, stderr: out.stream, tty: false });
    expect(s).toMatchObject({ job: 'quickstart', algorithm: 'lv-xattn', worldSize: 2, steps: 2, backend: 'cpu' });
    expect(s.stepSeconds).toBeGreaterThan(0);
    expect(s.attentionTflopsPerWorker).toBeGreaterThan(0);
    expect(s.bytesSentPerStepPerWorker).toBeGreaterThan(0);
    expect(out.text()).toMatch(/\[rank 1\] rank 1 of 2 ready/);
  }, 60_000);

  it('--algorithm and --world-size override the manifest; ring moves far more bytes on long visual input', async () => {
    const out = sink();
    const common = { workerEntry: BIN, steps: 1, worldSize: 3, stdout: out.stream, stderr: out.stream, tty: false };
    const lv = await runLocal(QUICKSTART, { ...common, algorithm: 'lv-xattn' });
    const ring = await runLocal(QUICKSTART, { ...common, algorithm: 'ring' });
    expect(ring).toMatchObject({ algorithm: 'ring', worldSize: 3 });
    expect(lv.worldSize).toBe(3);
    // quickstart: 128 text vs 8192 visual tokens, GQA 4 — LV-XAttn's messages are much smaller.
    expect(ring.bytesSentPerStepPerWorker).toBeGreaterThan(5 * lv.bytesSentPerStepPerWorker);
  }, 90_000);

  it.each([
    ['bad-heads.yaml', /model\.heads must be divisible by model\.kvHeads/],
    ['bad-fields.yaml', /workers must be >= 1[\s\S]*dtype must be one of[\s\S]*algorithm must be one of/],
    ['not-yaml.yaml', /not valid YAML/],
    ['does-not-exist.yaml', /cannot read manifest/],
  ])('rejects %s with a clear message and exit code 1', async (file, message) => {
    await expect(runLocal(fixture(file), { workerEntry: BIN })).rejects.toMatchObject({ code: 'XATTN_E_MANIFEST', message: expect.stringMatching(message) });
    const r = await runCli(['run', fixture(file)]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(message);
  }, 30_000);

  it('exits non-zero naming the rank when a worker is killed mid-run', async () => {
    let killed = false;
    const r = await runCli(['run', fixture('long.yaml')], (line, kill) => {
      const m = /\[rank 1\] rank 1 of 3 ready \(pid (\d+)/.exec(line);
      if (m && !killed) {
        killed = true;
        setTimeout(() => kill(Number(m[1])), 500);
      }
    });
    expect(killed).toBe(true);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/rank 1 was killed by SIGKILL/);
  }, 60_000);

  it('rejects bad flags with a usage error', async () => {
    const r = await runCli(['run', QUICKSTART, '--world-size', 'zero']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--world-size must be a positive integer/);
  }, 30_000);
});
