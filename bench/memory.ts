// npm run bench:memory [-- --steps N] [--text-tokens N] — on one GPU: the most visual tokens a training step of the
// Llama-3.2-Vision cross-attention stack fits with KV recomputation off, on, and on with V kept
// (attention.keepValues: only K re-projected), and the step time of each at the largest count that fits
// without recomputation. Target (the LV-XAttn paper's claim, for recomputation on): >= 1.6x more
// tokens at <= 8% longer steps. Peak memory is affine in the token count, so two small runs per mode
// predict the limit; a run at the prediction confirms it (stepping down 4% at a time on out-of-memory).
// Each run is its own process, so an out-of-memory error leaves nothing behind. Writes
// bench/results/memory-<device>-q<text tokens>-<date>.json (or into $XATTN_BENCH_OUT).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectRoot } from '../crds/root.js';
import type { XAttnJob } from '../crds/types.js';
import { Engine } from '../runtime/engine/engine.js';
import { runTraining } from '../runtime/train/run-training.js';
import { benchJob } from './train-job.js';
import { withRankEngine } from '../test/fixtures/rank-engine.js';
import { sendToParent, spawnRanks } from '../test/fixtures/spawn-ranks.js';

const self = fileURLToPath(import.meta.url);
const GRAIN = 1024; // token counts are multiples of this
const HEADROOM = 0.03; // of the device's memory, kept free for the allocator's fragmentation

/** off: everything stored; on: K/V (and Q) re-projected in the backward; values: V kept, K re-projected. */
type Mode = 'off' | 'on' | 'values';
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
// Recomputation re-runs the K/V projections, whose cost grows with the visual tokens alone while the
// attention's grows with text x visual: its share of a step, and so the step-time ratio, falls as the
// text gets longer (H200: 1.12x at 1024 text tokens, 1.077x at 2048). The default, 2048, is the text
// length of the paper's Llama-3-V memory example; --text-tokens picks another.
const textTokens = Number(arg('text-tokens', '2048'));
const jobFor = (mode: Mode, tokens: number, steps: number) =>
  benchJob('cuda', tokens, steps, 1, mode !== 'off', { keepValues: mode === 'values', textTokens });
const label = (m: Mode) => ({ off: 'recompute off   ', on: 'recompute on    ', values: 'recompute K only' })[m];

interface Trial {
  tokens: number;
  mode: Mode;
  fits: boolean;
  peakBytes: number;
  /** Memory held before training (CUDA context, NCCL, cuBLAS workspace). */
  baseBytes: number;
  totalBytes: number;
  /** Mean of the steps after the first (0 when only one ran). */
  stepMs: number;
  /** The same steps' batch preparation (the synthetic targets' teacher forward), which stepMs leaves out. */
  batchMs: number;
  error?: string;
}

async function rankMain(): Promise<void> {
  const job = JSON.parse(process.env.BENCH_JOB!) as XAttnJob;
  const mode = process.env.BENCH_MODE as Mode;
  const trial = await withRankEngine('cuda', 120_000, async ({ engine }): Promise<Trial> => {
    const before = engine.info({ resetPeak: true });
    const base = { tokens: job.spec.workload.visualTokens, mode, baseBytes: before.memoryUsed, totalBytes: before.memoryTotal };
    const steps: number[] = [], batches: number[] = [];
    try {
      await runTraining(engine, job, { rank: 0, worldSize: 1, onStep: (e) => (steps.push(e.seconds), batches.push(e.batchSeconds)), log: () => {} });
    } catch (e) {
      const msg = (e as Error).message;
      if (!/cudaMalloc|out of memory|CUBLAS_STATUS_ALLOC_FAILED/i.test(msg)) throw e;
      return { ...base, fits: false, peakBytes: engine.info().memoryPeak, stepMs: 0, batchMs: 0, error: msg.split('\n')[0] };
    }
    const afterFirstMs = (xs: number[]) => (xs.length > 1 ? (1000 * xs.slice(1).reduce((a, b) => a + b, 0)) / (xs.length - 1) : 0);
    return { ...base, fits: true, peakBytes: engine.info().memoryPeak, stepMs: afterFirstMs(steps), batchMs: afterFirstMs(batches) };
  });
  await sendToParent(trial);
}

async function trial(tokens: number, mode: Mode, steps: number): Promise<Trial> {
  const env = { BENCH_JOB: JSON.stringify(jobFor(mode, tokens, steps)), BENCH_MODE: mode };
  const [t] = await spawnRanks<Trial>(self, 1, env, { args: ['rank'], execArgv: process.execArgv, timeoutMs: 300_000 });
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  console.log(
    `  ${label(mode)} ${String(tokens).padStart(8)} tokens: ` +
      (t!.fits ? `peak ${gib(t!.peakBytes)} GiB${t!.stepMs ? `, ${t!.stepMs.toFixed(0)} ms/step (+ ${t!.batchMs.toFixed(0)} ms batch)` : ''}` : `out of memory (${t!.error})`),
  );
  return t!;
}

/** The largest multiple of GRAIN that fits, predicted from two small runs and confirmed by a run. */
async function largestFit(mode: Mode, small: [number, number], steps: number): Promise<Trial & { predicted: number }> {
  const [a, b] = [await trial(small[0], mode, 1), await trial(small[1], mode, 1)];
  if (!a.fits || !b.fits) throw new Error(`${label(mode).trim()}: even ${small[1]} visual tokens do not fit`);
  const perToken = (b.peakBytes - a.peakBytes) / (small[1] - small[0]);
  const fixed = a.peakBytes - perToken * small[0];
  const budget = a.totalBytes * (1 - HEADROOM) - a.baseBytes;
  const predicted = Math.floor((budget - fixed) / perToken / GRAIN) * GRAIN;
  console.log(`  ${label(mode)}: ${(perToken / 1024).toFixed(1)} KiB per visual token + ${(fixed / 2 ** 30).toFixed(2)} GiB → predicts ${predicted} tokens`);
  for (let tokens = predicted, tries = 0; tries < 4; tries++, tokens = Math.floor((tokens * 0.96) / GRAIN) * GRAIN) {
    const t = await trial(tokens, mode, steps);
    if (t.fits) return { ...t, predicted };
  }
  throw new Error(`${label(mode).trim()}: nothing within 15% below the predicted ${predicted} tokens fits`);
}

async function main(): Promise<void> {
  if (Engine.cudaDeviceCount() < 1) throw new Error('bench:memory needs the CUDA build of the addon and a GPU (cudaDeviceCount() is 0)');
  const device = Engine.cudaDeviceName(0);
  const steps = Number(arg('steps', '3'));
  const small: [number, number] = [16384, 65536];
  if (!Number.isInteger(textTokens) || textTokens < 1) throw new Error(`--text-tokens must be a positive integer, got ${arg('text-tokens', '')}`);
  console.log(`device: ${device}; Llama-3.2-Vision cross-attention stack (8 layers, bf16 attention), ${textTokens} text tokens, one GPU`);
  const off = await largestFit('off', small, steps);
  const on = await largestFit('on', small, steps);
  const values = await largestFit('values', small, steps);
  // Step time of recomputation at the count all fit: the price of the memory it saves.
  const onAtOff = await trial(off.tokens, 'on', steps);
  const valuesAtOff = await trial(off.tokens, 'values', steps);
  const row = (t: Trial & { predicted: number }, atOff: Trial | undefined) => ({
    maxVisualTokens: t.tokens, predicted: t.predicted, peakBytes: t.peakBytes, stepMs: t.stepMs, batchMsAtOffMax: atOff?.batchMs ?? off.batchMs,
    tokenRatio: t.tokens / off.tokens, stepMsAtOffMax: atOff?.stepMs ?? off.stepMs, stepTimeRatio: (atOff?.stepMs ?? off.stepMs) / off.stepMs,
  });
  const result = {
    device,
    date: new Date().toISOString(),
    model: 'llama-3.2-11b-vision',
    textTokens,
    deviceMemoryBytes: off.totalBytes,
    off: row(off, undefined),
    on: row(on, onAtOff),
    keepValues: row(values, valuesAtOff),
    tokenRatio: on.tokens / off.tokens,
    stepTimeRatio: onAtOff.stepMs / off.stepMs,
    targets: { tokenRatio: 1.6, stepTimeRatio: 1.08 },
  };
  console.log(`\nmost visual tokens on one GPU, and the step time at ${off.tokens} tokens (target for recompute on: >= 1.6x tokens, <= 1.08x step time):`);
  for (const [name, r] of [['recompute off', result.off], ['recompute on', result.on], ['recompute K only', result.keepValues]] as const)
    console.log(`  ${name.padEnd(17)} ${String(r.maxVisualTokens).padStart(9)} tokens (${r.tokenRatio.toFixed(2)}x)   ${r.stepMsAtOffMax.toFixed(0).padStart(6)} ms (${r.stepTimeRatio.toFixed(3)}x)`);
  const dir = process.env.XATTN_BENCH_OUT ?? path.join(projectRoot(), 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `memory-${device.replace(/[^A-Za-z0-9]+/g, '-')}-q${textTokens}-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

await (process.argv[2] === 'rank' ? rankMain() : main());
