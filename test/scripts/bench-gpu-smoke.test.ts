// bench:gpu's plumbing, which otherwise runs only on GPU machines: its smoke mode (two CPU ranks over TCP
// at a toy shape) must write the distributed rows the issue asks for, with both clocks' step times.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('writes LV-XAttn, Ring and no-comm step times, queued and host-synced, with the link and the bound', () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bench-gpu-smoke-'));
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/gpu.ts'], {
    cwd: root,
    env: { ...process.env, XATTN_BENCH_SMOKE: '1', XATTN_BENCH_OUT: dir, XATTN_LV_STACK: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const files = readdirSync(dir);
  expect(files).toEqual([expect.stringMatching(/^gpu-distributed-cpu-smoke-\d{4}-\d{2}-\d{2}\.json$/)]);
  const result = JSON.parse(readFileSync(path.join(dir, files[0]!), 'utf8'));
  expect(result.device).toBe('cpu (smoke)');
  expect(result.distributed).toHaveLength(1);
  const row = result.distributed[0];
  expect(row).toMatchObject({ P: 2, shape: 'H4/Hkv2 d16 Lq32 Lkv512', interconnect: 'tcp' });
  const positive = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;
  for (const k of ['lvxattn_ms', 'ring_ms', 'nocomm_ms', 'lvxattn_fwd_ms', 'nocomm_fwd_ms', 'link_gbps', 'lv_bytes_per_step', 'ring_bytes_per_step'])
    expect(positive(row[k]), k).toBe(true);
  for (const k of ['lvxattn_ms', 'ring_ms', 'nocomm_ms', 'lv_bound_ratio']) expect(positive(row.synced[k]), `synced.${k}`).toBe(true);
  expect(positive(row.host_queue_ms.lv) && positive(row.host_queue_ms.nocomm)).toBe(true);
  // The bound: the step over the larger of the no-comm step and the step's bytes at the link.
  const moveMs = (row.lv_bytes_per_step / (row.link_gbps * 1e9)) * 1000;
  expect(row.lv_bound_ratio).toBeCloseTo(row.lvxattn_ms / Math.max(row.nocomm_ms, moveMs), 9);
  // LV-XAttn moves far fewer bytes than Ring (small text blocks travel, not the visual K/V).
  expect(row.lv_bytes_per_step).toBeLessThan(row.ring_bytes_per_step / 4);
  // XATTN_LV_STACK=1 (below) stacks LV-XAttn's backward, and the no-comm bound mirrors it.
  expect([row.lv_stacked, row.nocomm_stacked]).toEqual([true, true]);
  // Two ranks keep their blocks on the ring (gathering starts at three).
  expect(row.lv_gathered).toBe(false);
}, 150_000);
