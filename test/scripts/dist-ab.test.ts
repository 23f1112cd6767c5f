// scripts/dist-ab.mjs (distributed A/B runs on the GPU machine), driven here through bench:gpu's CPU smoke
// mode: every variant runs once a round with its environment, and the table holds each variant's medians.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script, no types
import { parseVariant, table } from '../../scripts/dist-ab.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir = '';
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

describe('dist-ab', () => {
  it('parses variants and rejects malformed ones by name', () => {
    expect(parseVariant('base=')).toEqual({ name: 'base', env: {} });
    expect(parseVariant('split=XATTN_LV_FIRST_SHARE=0.8,XATTN_LV_CHUNKS=2')).toEqual({ name: 'split', env: { XATTN_LV_FIRST_SHARE: '0.8', XATTN_LV_CHUNKS: '2' } });
    expect(() => parseVariant('split')).toThrow(/variant "split"/);
    expect(() => parseVariant('x=NOVALUE')).toThrow(/"NOVALUE" is not VAR=VALUE/);
  });

  it('tabulates each variant per cell: medians of the step, the no-comm step and the ratio', () => {
    const row = (lv: number, nc: number) => ({ interconnect: 'nvlink', shape: 'S', lvxattn_ms: lv, nocomm_ms: nc, lv_bound_ratio: lv / nc });
    const lines = table([
      { variant: 'a', rows: [row(4, 2)] },
      { variant: 'b', rows: [row(3, 2)] },
      { variant: 'a', rows: [row(6, 2)] },
    ]);
    expect(lines[0]).toBe('nvlink  S');
    expect(lines[1]).toMatch(/^ {2}a +LV 5\.000 ms {2}no-comm 2\.000 ms {2}LV\/bound 2\.500 {2}\(2\.000 3\.000\)$/);
    expect(lines[2]).toMatch(/^ {2}b +LV 3\.000 ms .*LV\/bound 1\.500 {2}\(1\.500\)$/);
  });

  it('runs every variant with its environment, writes each run, all runs and the table, and names a variant that failed', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'dist-ab-'));
    // "broken" cannot start Node at all: it fails in round 1, runs no more, and the others still run.
    const args = ['scripts/dist-ab.mjs', '--rounds', '2', '--bench', 'bench/gpu.ts', 'base=', 'broken=NODE_OPTIONS=--no-such-flag', 'chunks2=XATTN_LV_CHUNKS=2'];
    const run = spawnSync(process.execPath, args, {
      cwd: root,
      env: { ...process.env, XATTN_BENCH_SMOKE: '1', OUT: dir },
      encoding: 'utf8',
      timeout: 150_000,
    });
    expect(run.status, run.stderr).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['base-0', 'base-1', 'broken-0', 'chunks2-0', 'chunks2-1', 'logs.txt', 'runs.json', 'table.txt']);
    // Every run in two files as well: its rows (the failed one has none) and its log.
    const all = JSON.parse(readFileSync(path.join(dir, 'runs.json'), 'utf8'));
    expect(all.map((r: { variant: string; round: number }) => `${r.variant} ${r.round}`)).toEqual(['base 1', 'chunks2 1', 'chunks2 2', 'base 2']);
    expect(all[1].rows[0].lv_row_chunks).toEqual({ fwd: 2, bwd: 2 });
    const logs = readFileSync(path.join(dir, 'logs.txt'), 'utf8');
    for (const run of ['base, round 1', 'broken, round 1', 'chunks2, round 1', 'chunks2, round 2', 'base, round 2']) expect(logs).toContain(`== ${run}\n`);
    expect(logs).toMatch(/== chunks2, round 2\n[^]*smoke: CPU over TCP/);
    // The variant's environment reached the ranks: LV-XAttn sent its blocks in two row chunks.
    const json = (v: string) => JSON.parse(readFileSync(path.join(dir, v, readdirSync(path.join(dir, v)).find((f) => f.endsWith('.json'))!), 'utf8'));
    expect(json('base-0').distributed[0].lv_row_chunks).toEqual({ fwd: 1, bwd: 1 });
    expect(json('chunks2-0').distributed[0].lv_row_chunks).toEqual({ fwd: 2, bwd: 2 });
    const lines = readFileSync(path.join(dir, 'table.txt'), 'utf8').trim().split('\n');
    expect(lines).toEqual([
      'tcp  H4/Hkv2 d16 Lq32 Lkv512',
      expect.stringMatching(/^ {2}base +LV \d+\.\d{3} ms {2}no-comm \d+\.\d{3} ms {2}LV\/bound \d+\.\d{3} {2}\(\d+\.\d{3} \d+\.\d{3}\)$/),
      expect.stringMatching(/^ {2}chunks2 +LV .*\(\d+\.\d{3} \d+\.\d{3}\)$/),
      expect.stringMatching(/^failed: broken, round 1: the bench failed \(exit \d+\); its output is in .*broken-0\/bench\.log$/),
    ]);
  }, 200_000);

  it('keeps the table of the runs it finished when it is killed mid-run (a device call out of time)', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'dist-ab-'));
    // "slow" would take 10 s; dist-ab is killed before, after "quick" finished
    const args = ['scripts/dist-ab.mjs', '--rounds', '1', '--bench', 'test/fixtures/fake-bench.mjs', 'quick=', 'slow=FAKE_BENCH_HANG=10'];
    const run = spawnSync(process.execPath, args, { cwd: root, env: { ...process.env, OUT: dir }, encoding: 'utf8', timeout: 5_000 });
    expect(run.signal).toBe('SIGTERM');
    expect(readFileSync(path.join(dir, 'table.txt'), 'utf8').trim().split('\n')).toEqual([
      'fake  S',
      expect.stringMatching(/^ {2}quick +LV 2\.000 ms {2}no-comm 1\.000 ms {2}LV\/bound 2\.000 {2}\(2\.000\)$/),
    ]);
    expect(JSON.parse(readFileSync(path.join(dir, 'runs.json'), 'utf8')).map((r: { variant: string }) => r.variant)).toEqual(['quick']);
  }, 20_000);

  it('A/Bs the strong-scaling runs where the bench args ask for them, each cell named by its P', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'dist-ab-'));
    const args = ['scripts/dist-ab.mjs', '--rounds', '1', '--bench', 'bench/gpu.ts', 'ring=XATTN_LV_GATHER=0', 'gathered=XATTN_LV_GATHER=1', '--', '--scaling', '--world-sizes', '2'];
    const run = spawnSync(process.execPath, args, { cwd: root, env: { ...process.env, XATTN_BENCH_SMOKE: '1', OUT: dir }, encoding: 'utf8', timeout: 150_000 });
    expect(run.status, run.stderr).toBe(0);
    const all = JSON.parse(readFileSync(path.join(dir, 'runs.json'), 'utf8'));
    // the scaling rows, with each variant's environment in effect
    expect(all.map((r: { variant: string; rows: { P: number; lv_gathered: boolean }[] }) => [r.variant, r.rows.map((x) => `${x.P} ${x.lv_gathered}`)])).toEqual([
      ['ring', ['2 false', '2 false']],
      ['gathered', ['2 true', '2 true']],
    ]);
    const lines = readFileSync(path.join(dir, 'table.txt'), 'utf8').trim().split('\n');
    expect(lines.filter((l) => !l.startsWith('  '))).toEqual(['P=2 tcp  H4/Hkv2 d16 Lq32 Lkv1024', 'P=2 tcp  H4/Hkv2 d16 Lq16 Lkv2048']);
    expect(lines.filter((l) => l.startsWith('  gathered ')).length).toBe(2);
  }, 200_000);

  it('stops with exit 2 and names a malformed variant', () => {
    const run = spawnSync(process.execPath, ['scripts/dist-ab.mjs', 'nosettings'], { cwd: root, encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/variant "nosettings"/);
  });
});
