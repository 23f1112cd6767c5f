// LV-XAttn and Ring Attention across P = 1..4 processes (TCP) equal exact attention: forward (O, LSE)
// and backward (dQ, dK, dV) against the independent fp64 reference, on ragged shards, GQA and masks
// with fully masked rows. 16-bit cases also run LV-XAttn with float16 partials, at the same tolerances.
// LV-XAttn's backward runs both on the Q blocks its forward kept and with Q sent again (another tensor).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shardRange, type DistCase } from '../fixtures/dist-case.js';
import type { RankResults } from '../fixtures/dist-attention-rank.js';
import { lvPlan, type LvPlan, type LvPlanQuery } from '../../runtime/native/schedules.js';
import { caseErrors } from '../fixtures/dist-compare.js';
import { spawnRanks } from '../fixtures/spawn-ranks.js';

const WORKER = fileURLToPath(new URL('../fixtures/dist-attention-worker.ts', import.meta.url));

// Odd lengths so every P in 1..4 gives ragged shards (and a rank with no text row at P = 4).
const CASES: DistCase[] = [
  { dims: { batch: 2, heads: 4, kvHeads: 2, headDim: 16, dtype: 'float32' }, lq: 11, lkv: 37, masked: true, seed: 11 },
  { dims: { batch: 1, heads: 8, kvHeads: 1, headDim: 32, dtype: 'bfloat16' }, lq: 9, lkv: 50, masked: false, seed: 12 },
  { dims: { batch: 1, heads: 4, kvHeads: 4, headDim: 8, dtype: 'float16' }, lq: 3, lkv: 23, masked: true, seed: 13 },
  { dims: { batch: 1, heads: 4, kvHeads: 2, headDim: 8, dtype: 'bfloat16' }, lq: 520, lkv: 21, masked: true, seed: 14 },
];

// Relative to the largest |expected|. O is stored in the storage dtype, so it carries that dtype's
// rounding (half an ulp: 2^-9 bf16, 2^-12 fp16); LSE and gradients are float32 (accumulated in fp32),
// but gradients see D = rowsum(dO∘O) of the rounded O.
const TOL: Record<string, { o: number; lse: number; grad: number }> = {
  float32: { o: 2e-5, lse: 2e-5, grad: 2e-5 },
  bfloat16: { o: 4e-3, lse: 2e-5, grad: 1.5e-2 },
  float16: { o: 5e-4, lse: 2e-5, grad: 2e-3 },
};

const DTYPE_BYTES = { float32: 4, bfloat16: 2, float16: 2 } as const;

/** Bytes of Q rank r sends in an LV-XAttn backward that does not have the forward's blocks: around the ring,
 * at steps 0..P-2 the block of rank r - t goes on to rank r + 1; gathered, its own block goes to every rank. */
function backwardQueryBytes(c: DistCase, P: number, r: number, gathered: boolean): number {
  const row = c.dims.batch * c.dims.heads * c.dims.headDim * DTYPE_BYTES[c.dims.dtype];
  const rowsOf = (rank: number) => {
    const [b, e] = shardRange(c.lq, P, ((rank % P) + P) % P);
    return e - b;
  };
  let rows = 0;
  for (let t = 0; t < P - 1; t++) rows += gathered ? rowsOf(r) : rowsOf(r - t);
  return rows * row;
}

/** The ranks' forces (XATTN_LV_CHUNKS, XATTN_LV_GATHER), which this process does not have. */
interface Forces {
  chunks: string;
  gather: string;
}

/** The plan as the ranks made it, where no chunks are forced: with their gathering force. */
function planUnder(forces: Forces, q: LvPlanQuery): LvPlan {
  return lvPlan({ ...q, ...(forces.gather ? { gather: forces.gather === '1' } : {}) });
}

/** Whether each pass of a variant gathered its blocks, as the plan decides under the ranks' forces. */
function expectedGathered(c: DistCase, P: number, r: RankResults, variant: string, keptQ: boolean, forces: Forces): boolean[] {
  if (P === 1 || variant === 'ring') return [false, false];
  const q = { dims: c.dims, lqTotal: c.lq, lkvTotal: c.lkv, world: P, rank: r.rank, masked: c.masked, linkGbps: r.linkGbps, flopsPerSecond: r.flopsPerSecond };
  const partials = variant === 'lv-xattn f16 partials' ? 'float16' : 'auto';
  const kept = keptQ && variant !== 'lv-xattn, Q sent again';
  const chunked = forcedChunks(forces.chunks).map((n) => n > 1);
  return [!chunked[0] && planUnder(forces, { ...q, partials, pass: 'forward' }).gathered, !chunked[1] && planUnder(forces, { ...q, partials, pass: 'backward', queryKept: kept }).gathered];
}

/** How each pass of a variant must send its partials: as the plan decides for the ranks' probed link and
 * the backend's nominal rate ('auto'), as asked, or float32 where nothing travels. */
function expectedPartials(c: DistCase, P: number, r: RankResults, variant: string, keptQ: boolean, forces: Forces): string[] {
  if (P === 1 || variant === 'ring') return ['float32', 'float32'];
  const q = { dims: c.dims, lqTotal: c.lq, lkvTotal: c.lkv, world: P, rank: r.rank, masked: c.masked, linkGbps: r.linkGbps, flopsPerSecond: r.flopsPerSecond };
  const partials = variant === 'lv-xattn f16 partials' ? 'float16' : 'auto';
  const kept = keptQ && variant !== 'lv-xattn, Q sent again';
  return [planUnder(forces, { ...q, partials, pass: 'forward' }).partials, planUnder(forces, { ...q, partials, pass: 'backward', queryKept: kept }).partials];
}

/** Whether a variant's backward must have stacked the own rows onto the visiting blocks (the last one around
 * the ring, all of them gathered): forced on (XATTN_LV_STACK=1, with one chunk), else as the plan decides (no
 * chunks forced at these rows). */
function expectedStacked(c: DistCase, P: number, r: RankResults, variant: string, keptQ: boolean, stack: string, chunks: number, forces: Forces): boolean {
  if (P === 1 || variant === 'ring' || chunks > 1) return false;
  if (stack === '1') return true;
  const q = { dims: c.dims, lqTotal: c.lq, lkvTotal: c.lkv, world: P, rank: r.rank, masked: c.masked, linkGbps: r.linkGbps, flopsPerSecond: r.flopsPerSecond };
  const partials = variant === 'lv-xattn f16 partials' ? 'float16' : 'auto';
  return planUnder(forces, { ...q, partials, pass: 'backward', queryKept: keptQ && variant !== 'lv-xattn, Q sent again' }).stackLast;
}

/** [forward, backward] row chunks as XATTN_LV_CHUNKS forces them (at these shapes the plan itself never chunks). */
const forcedChunks = (chunks: string): number[] => {
  const [f = '', b = f] = chunks.split('/');
  return [Number(f) || 1, Number(b) || 1];
};

// Blocks travel in row chunks where the link is the bottleneck (never at these shapes on CPU);
// XATTN_LV_CHUNKS forces chunks (more than some blocks have rows; N for both passes, F/B for each), so the
// chunked forward and backward are checked too, also with other counts in each. On links this fast for blocks this small, the owner computes its block whole;
// XATTN_LV_FIRST_SHARE forces the two-piece split (along the batch or the visual rows) at that share (F/B: each
// pass its own).
// XATTN_LV_KEEP_Q=0 keeps no forward's Q blocks. XATTN_LV_STACK=1 stacks the backward's own rows onto the last
// visiting block (never with chunks; by the plan, only where dK/dV dwarf the text rows, not at these shapes);
// with a first share of 0 nothing hides its first hop, so Q, dO, LSE, D and the mask travel as one message
// (chunk by chunk where chunks are forced). From P = 3 the blocks are gathered (one launch for all the
// visiting blocks) wherever they travel whole with float32 partials; XATTN_LV_GATHER=0 keeps them on the
// ring, =1 gathers them at P = 2 as well.
describe.each([
  [1, '', '', '', '', ''],
  [2, '', '', '', '', ''],
  [3, '', '', '', '', ''],
  [4, '', '', '', '', ''],
  [2, '3', '', '', '', ''],
  [3, '4/3', '', '', '', ''],
  [2, '', '0.4', '', '', ''],
  [3, '', '0.7/0.3', '', '', ''],
  [4, '2', '0.5', '', '', ''],
  [3, '', '', '0', '', ''],
  [2, '', '', '', '1', ''],
  [3, '', '', '', '1', ''],
  [4, '', '0.5', '', '1', ''],
  [2, '', '0.4', '0', '1', ''],
  [2, '2', '', '', '1', ''],
  [2, '', '0', '', '1', ''],
  [3, '', '0', '0', '1', ''],
  [2, '2', '0', '0', '', ''],
  [3, '', '', '', '', '0'],
  [4, '', '0.5', '0', '', '0'],
  [2, '', '', '', '', '1'],
  [2, '', '0.4', '0', '', '1'],
])('P = %i ranks over TCP, row chunks "%s", first share "%s", kept Q "%s", stacked "%s", gathered "%s"', (P, chunks, share, keepQ, stack, gather) => {
  it('LV-XAttn and Ring equal fp64 attention, forward and backward', async () => {
    const forces = { chunks, gather };
    const env = { XATTN_TEST_CASES: JSON.stringify(CASES), XATTN_LV_CHUNKS: chunks, XATTN_LV_FIRST_SHARE: share, XATTN_LV_KEEP_Q: keepQ, XATTN_LV_STACK: stack, XATTN_LV_GATHER: gather };
    const ranks = await spawnRanks<RankResults>(WORKER, P, env);
    CASES.forEach((c, ci) => {
      const tol = TOL[c.dims.dtype]!;
      for (const [algo, e] of Object.entries(caseErrors(c, ci, ranks))) {
        const what = `case ${ci} (${c.dims.dtype}, H${c.dims.heads}/${c.dims.kvHeads}, ${c.lq}x${c.lkv}${c.masked ? ', masked' : ''}) ${algo} P=${P}`;
        expect(e.o, `${what}: O`).toBeLessThanOrEqual(tol.o);
        expect(e.lse, `${what}: LSE`).toBeLessThanOrEqual(tol.lse);
        expect(e.dq, `${what}: dQ`).toBeLessThanOrEqual(tol.grad);
        expect(e.dk, `${what}: dK`).toBeLessThanOrEqual(tol.grad);
        expect(e.dv, `${what}: dV`).toBeLessThanOrEqual(tol.grad);
        if (c.masked) expect(e.fullyMaskedRows, `${what}: some rows are fully masked`).toBeGreaterThan(0);
      }
      const lvChunks = P > 1 ? forcedChunks(chunks) : [1, 1];
      for (const r of ranks) {
        expect(r.results[ci]!['lv-xattn']!.rowChunks, `case ${ci} rank ${r.rank}: LV-XAttn forward/backward chunks`).toEqual(lvChunks);
        if (c.dims.dtype !== 'float32') expect(r.results[ci]!['lv-xattn f16 partials']!.rowChunks, `case ${ci} rank ${r.rank}: with float16 partials`).toEqual(lvChunks);
        expect(r.results[ci]!.ring!.rowChunks, `case ${ci} rank ${r.rank}: Ring chunks`).toEqual([1, 1]);
        for (const [name, v] of Object.entries(r.results[ci]!)) {
          const gathered = expectedGathered(c, P, r, name, keepQ !== '0', forces);
          expect(v.gathered, `case ${ci} rank ${r.rank} ${name}: blocks gathered per pass`).toEqual(gathered);
          expect(v.stackedRows, `case ${ci} rank ${r.rank} ${name}: backward stacked`).toBe(expectedStacked(c, P, r, name, keepQ !== '0', stack, lvChunks[1]!, forces));
        }
        // The backward on the kept blocks sends everything but Q; with Q in another tensor it sends Q too.
        // (Where 'auto' sent dQ differently in the two, the lighter trip tipped the plan: bytes differ by more.)
        const kept = r.results[ci]!['lv-xattn']!, again = r.results[ci]!['lv-xattn, Q sent again']!;
        const saved = keepQ === '0' ? 0 : backwardQueryBytes(c, P, r.rank, kept.gathered[1]!);
        expect(kept.bytesSent[0], `case ${ci} rank ${r.rank}: forward bytes`).toBe(again.bytesSent[0]);
        if (kept.partials[1] === again.partials[1])
          expect(again.bytesSent[1]! - kept.bytesSent[1]!, `case ${ci} rank ${r.rank}: backward bytes saved by the kept Q`).toBe(saved);
        if (c.dims.dtype === 'float32') expect(kept.partials, 'float32 attention keeps float32 partials').toEqual(['float32', 'float32']);
        // Around the ring every rank passes Q blocks on; gathered, a rank with no text rows of its own sends none.
        const [b0, e0] = shardRange(c.lq, P, r.rank);
        if (P > 1 && keepQ !== '0' && (e0 > b0 || !kept.gathered[1])) expect(saved).toBeGreaterThan(0);
        for (const [name, v] of Object.entries(r.results[ci]!))
          expect(v.partials, `case ${ci} rank ${r.rank} ${name}: partials per pass`).toEqual(expectedPartials(c, P, r, name, keepQ !== '0', forces));
      }
    });
    // The link probe (LV-XAttn's pipelining depends on it) must give every rank the same value.
    const links = ranks.map((r) => r.linkGbps);
    if (P === 1) expect(links).toEqual([0]);
    else {
      expect(links[0], 'probed link bandwidth').toBeGreaterThan(0);
      expect(new Set(links).size, `every rank agrees on the link: ${links.join(', ')}`).toBe(1);
    }
    expect(ranks.map((r) => r.transportPath)).toEqual(ranks.map(() => (P === 1 ? 'local' : 'tcp')));
  }, 120_000);
});

// $XATTN_TRACE writes each rank's LV-XAttn timeline (native/core/schedule_trace.h): a line per call,
// first the gap since the previous traced call (-1 for the first, never negative after), then marks in
// stream order, their times never decreasing, ending at "done". The directory is created if missing.
describe('schedule trace', () => {
  it('writes one line per LV-XAttn call on every rank, with ordered marks', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'xattn-trace-'));
    const dir = path.join(root, 'not', 'made', 'yet');
    try {
      const ranks = await spawnRanks<RankResults>(WORKER, 2, { XATTN_TEST_CASES: JSON.stringify([CASES[1]]), XATTN_TRACE: dir, XATTN_LV_CHUNKS: '2', XATTN_LV_FIRST_SHARE: '0.5' });
      for (const rank of [0, 1]) {
        const lines = readFileSync(path.join(dir, `trace-rank${rank}.txt`), 'utf8').trim().split('\n');
        const calls = lines.map((l) => l.split('  ')[0]!);
        // lv-xattn, lv-xattn with Q sent again, then lv-xattn with float16 partials (Ring writes no trace);
        // each line names float16 partials where that pass reported sending them.
        const plan = 'B1 H8/1 d32 9x50, link N GB/s, 2 chunks, split along visual rows';
        const sent = ranks.find((r) => r.rank === rank)!.results[0]!;
        const p16 = (variant: string, pass: number) => (sent[variant]!.partials[pass] === 'float16' ? ', float16 partials' : '');
        expect(sent['lv-xattn f16 partials']!.partials).toEqual(['float16', 'float16']);
        expect(calls.map((c) => c.replace(/link \d+ GB\/s/, 'link N GB/s'))).toEqual([
          `lv forward ${plan}${p16('lv-xattn', 0)}`, `lv backward ${plan}${p16('lv-xattn', 1)}, Q kept`,
          `lv forward ${plan}${p16('lv-xattn, Q sent again', 0)}`, `lv backward ${plan}${p16('lv-xattn, Q sent again', 1)}`,
          `lv forward ${plan}, float16 partials`, `lv backward ${plan}, float16 partials, Q kept`,
        ]);
        for (const [i, line] of lines.entries()) {
          const [gap, ...marks] = line.split('  ').slice(1).map((m) => m.split('@'));
          expect(gap![0], line).toBe('gap');
          if (i === 0) expect(gap![1], line).toBe('-1.000');
          else expect(Number(gap![1]), line).toBeGreaterThanOrEqual(0);
          expect(marks[0], line).toEqual(['start', '0.000']);
          expect(marks.at(-1)![0], line).toBe('done');
          expect(marks.map(([l]) => l), line).toEqual(expect.arrayContaining(['own1', 'got-q1.1', 'visit1.1', 'own2', 'got-home1'].map((l) => (line.includes('backward') ? l.replace('got-q', 'got-in') : l))));
          const times = marks.map(([, t]) => Number(t));
          expect(times, line).toEqual([...times].sort((a, b) => a - b));
        }
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);
});
