// npm run bench:train [-- --backend cpu|cuda --steps N --visual-tokens-per-worker N --world-sizes 1,2] — training
// step time (the batch, whose synthetic targets take a teacher's forward, is timed apart: batchMs), TFLOP/s
// per worker, the share of the step in attention / projections / communication / other, and peak memory,
// with KV recomputation on versus off. Each configuration runs as its own gang of worker processes (so
// peak RSS is per configuration); on GPUs twice, once for the step time and once with a device wait
// after every op for exact shares. Writes bench/results/train-<date>.json with the device.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectRoot } from '../crds/root.js';
import type { XAttnJob } from '../crds/types.js';
import { Engine, type BackendName } from '../runtime/engine/engine.js';
import { keptProjections } from '../runtime/model/context.js';
import { stepFlops } from '../runtime/model/flops.js';
import { resolveModel } from '../runtime/model/presets.js';
import { runTraining } from '../runtime/train/run-training.js';
import { benchJob } from './train-job.js';
import { withRankEngine } from '../test/fixtures/rank-engine.js';
import { sendToParent, spawnRanks } from '../test/fixtures/spawn-ranks.js';

const self = fileURLToPath(import.meta.url);

interface RankReport {
  stepSeconds: number[];
  /** Each step's batch preparation (the synthetic targets' teacher forward), outside its step time. */
  batchSeconds: number[];
  profile: { seconds: Record<string, number>; comm: Record<string, { bytes: number; seconds: number }> };
  peakActivationBytes: number;
  /** Peak bytes in device tensors (CUDA), else the process's peak RSS. */
  peakMemoryBytes: number;
  finalLoss: number;
}

/** One rank (a child process): engine and transport (TCP on CPU, NCCL on CUDA), training; reports over IPC. */
async function rankMain(): Promise<void> {
  const job = JSON.parse(process.env.BENCH_JOB!) as XAttnJob;
  const backend = process.env.BENCH_BACKEND as BackendName;
  const report = await withRankEngine(backend, 120_000, async ({ engine, rank, worldSize }): Promise<RankReport> => {
    const stepSeconds: number[] = [], batchSeconds: number[] = [];
    engine.info({ resetPeak: true });
    const onStep = (e: { seconds: number; batchSeconds: number }) => (stepSeconds.push(e.seconds), batchSeconds.push(e.batchSeconds));
    const r = await runTraining(engine, job, { rank, worldSize, exactProfile: process.env.BENCH_EXACT === '1', onStep });
    const peakMemoryBytes = backend === 'cuda' ? engine.info().memoryPeak : process.resourceUsage().maxRSS * 1024;
    return { stepSeconds, batchSeconds, profile: r.profile, peakActivationBytes: r.peakActivationBytes, peakMemoryBytes, finalLoss: r.finalLoss };
  });
  await sendToParent(report);
}

/** `exact`: every timed op waits for the device, for exact time shares (CUDA ops otherwise resolve once
 * queued); the waits slow the step, so the step time comes from a run without them. */
async function runGang(job: XAttnJob, backend: BackendName, exact = false): Promise<RankReport[]> {
  // One core set per rank: P pools of all cores would oversubscribe the machine.
  const threads = process.env.XATTN_CPU_THREADS ?? String(Math.max(1, Math.floor(cpus().length / job.spec.workers)));
  const env = { XATTN_CPU_THREADS: threads, BENCH_JOB: JSON.stringify(job), BENCH_BACKEND: backend, BENCH_EXACT: exact ? '1' : '0' };
  return spawnRanks<RankReport>(self, job.spec.workers, env, { args: ['rank'], execArgv: process.execArgv, timeoutMs: 600_000 });
}

/** `reports` time the steps; `shareReports` (an exact-profile run of the same job) split them. */
function summarizeGang(job: XAttnJob, reports: RankReport[], shareReports = reports) {
  const P = job.spec.workers;
  // Step 1 pays one-time costs (schedules, first allocations): the mean is over the rest.
  const mean = (xs: number[]) => xs.slice(1).reduce((a, b) => a + b, 0) / Math.max(1, xs.length - 1);
  const step = Math.max(...reports.map((r) => mean(r.stepSeconds)));
  const { recomputeKV, keepValues } = job.spec.attention;
  const flops = stepFlops(resolveModel(job.spec.model), job.spec.workload, keptProjections(recomputeKV, keepValues));
  const r0 = reports[0]!, s0 = shareReports[0]!;
  const total = Object.values(s0.profile.seconds).reduce((a, b) => a + b, 0);
  const share = Object.fromEntries(Object.entries(s0.profile.seconds).map(([k, v]) => [k, +(v / total).toFixed(4)]));
  return {
    workers: P,
    recomputeKV: job.spec.attention.recomputeKV,
    stepMs: +(step * 1000).toFixed(2),
    batchMs: +(Math.max(...reports.map((r) => mean(r.batchSeconds))) * 1000).toFixed(2),
    modelTflopsPerWorker: +(flops.model / P / step / 1e12).toFixed(6),
    executedTflopsPerWorker: +((flops.model + flops.recompute) / P / step / 1e12).toFixed(6),
    share,
    commBytesPerStepPerWorker: Math.round(Object.values(r0.profile.comm).reduce((a, c) => a + c.bytes, 0) / r0.stepSeconds.length),
    peakActivationBytes: Math.max(...reports.map((r) => r.peakActivationBytes)),
    peakMemoryBytes: Math.max(...reports.map((r) => r.peakMemoryBytes)),
    finalLoss: r0.finalLoss,
  };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const gpus = Engine.cudaDeviceCount();
  const backend = (arg('backend', gpus > 0 ? 'cuda' : 'cpu')) as BackendName;
  const gpu = backend === 'cuda';
  const steps = Number(arg('steps', gpu ? '6' : '5'));
  const worldSizes = arg('world-sizes', gpu ? (gpus >= 2 ? '1,2' : '1') : '1,2').split(',').map(Number);
  // Visual tokens per worker: the global count grows with P (weak scaling), as in the GPU scaling runs.
  const perWorker = Number(arg('visual-tokens-per-worker', gpu ? '32768' : '8192'));
  const device = gpu ? `${Engine.cudaDeviceName(0)} (cuda engine)` : `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores, cpu engine)`;
  console.log(`device: ${device}`);
  const rows = [];
  for (const P of worldSizes) {
    const byMode: Record<string, ReturnType<typeof summarizeGang>> = {};
    for (const recomputeKV of [false, true]) {
      const job = benchJob(backend, perWorker * P, steps, P, recomputeKV);
      // On CPU every op has run when it resolves: one run gives both the step and exact shares.
      const timing = await runGang(job, backend);
      const s = summarizeGang(job, timing, gpu ? await runGang(job, backend, true) : timing);
      byMode[recomputeKV ? 'on' : 'off'] = s;
      rows.push({ visualTokens: perWorker * P, ...s });
      const pct = (k: string) => `${((s.share[k] ?? 0) * 100).toFixed(0)}%`;
      console.log(
        `P=${P} recompute ${recomputeKV ? 'on ' : 'off'}: ${s.stepMs.toFixed(1)} ms/step (+ ${s.batchMs.toFixed(1)} ms batch), ${(s.modelTflopsPerWorker * 1000).toFixed(2)} GFLOP/s/worker ` +
          `(attention ${pct('attention')}, projections ${pct('projection')}, comm ${pct('comm')}, other ${pct('other')}), ` +
          `peak activations ${(s.peakActivationBytes / 2 ** 20).toFixed(1)} MiB, peak ${gpu ? 'GPU memory' : 'RSS'} ${(s.peakMemoryBytes / 2 ** 20).toFixed(0)} MiB`,
      );
    }
    const on = byMode.on!, off = byMode.off!;
    console.log(`  recompute: ${(on.stepMs / off.stepMs).toFixed(3)}x step time, ${(off.peakActivationBytes / on.peakActivationBytes).toFixed(2)}x less activation memory`);
  }
  const job = benchJob(backend, perWorker, steps, 1, true);
  const out = {
    device,
    date: new Date().toISOString(),
    shape: { ...resolveModel(job.spec.model), textTokens: job.spec.workload.textTokens, visualTokensPerWorker: perWorker, batch: 1, dtype: job.spec.workload.dtype, steps },
    threadsPerRank: gpu ? undefined : (process.env.XATTN_CPU_THREADS ?? `cores / world size (${cpus().length} cores)`),
    runs: rows,
  };
  const dir = process.env.XATTN_BENCH_OUT ?? path.join(projectRoot(), 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `train-${device.replace(/ \(.*/, '').replace(/[^A-Za-z0-9]+/g, '-')}-${out.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

await (process.argv[2] === 'rank' ? rankMain() : main());
