// npm run bench:train [-- --steps N --visual-tokens N --world-sizes 1,2] — training step time, TFLOP/s
// per worker, the share of the step in attention / projections / communication / other, and peak
// memory, with KV recomputation on versus off. Each configuration runs as its own gang of worker
// processes (so peak RSS is per configuration). Writes bench/results/train-<date>.json with the device.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateXAttnJob } from '../crds/validate.js';
import type { XAttnJob } from '../crds/types.js';
import { Engine } from '../runtime/engine/engine.js';
import { stepFlops } from '../runtime/model/flops.js';
import { resolveModel } from '../runtime/model/presets.js';
import { joinRendezvous } from '../runtime/rendezvous/index.js';
import { connectTcpTransport } from '../runtime/rendezvous/transport.js';
import { runTraining } from '../runtime/train/run-training.js';
import { freePort } from '../test/fixtures/spawn-ranks.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

interface RankReport {
  stepSeconds: number[];
  profile: { seconds: Record<string, number>; comm: Record<string, { bytes: number; seconds: number }> };
  peakActivationBytes: number;
  maxRssBytes: number;
  finalLoss: number;
}

function benchJob(visualTokens: number, steps: number, workers: number, recomputeKV: boolean): XAttnJob {
  return validateXAttnJob({
    apiVersion: 'xattn.io/v1alpha1',
    kind: 'XAttnJob',
    metadata: { name: 'bench-train' },
    spec: {
      workers,
      model: { preset: 'custom', layers: 4, heads: 8, kvHeads: 2, headDim: 64, textHidden: 512, visualHidden: 512 },
      workload: { mode: 'train', textTokens: 64, visualTokens, batch: 1, dtype: 'float32', steps, warmupSteps: 1, learningRate: 1e-3, seed: 1 },
      attention: { algorithm: 'lv-xattn', recomputeKV },
    },
  });
}

/** One rank (a child process): rendezvous, TCP transport, training; reports over IPC. */
async function rankMain(): Promise<void> {
  const job = JSON.parse(process.env.BENCH_JOB!) as XAttnJob;
  const rank = Number(process.env.RANK), worldSize = Number(process.env.WORLD_SIZE);
  const rdv = await joinRendezvous({ masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT), rank, worldSize, token: process.env.XATTN_JOB_TOKEN, timeoutMs: 60_000, jobName: 'bench-train' });
  const engine = Engine.create();
  const transport = worldSize > 1 ? await connectTcpTransport(rdv, { rank, worldSize, token: process.env.XATTN_JOB_TOKEN, timeoutMs: 60_000 }) : undefined;
  if (transport) engine.useTcp(transport);
  const stepSeconds: number[] = [];
  const r = await runTraining(engine, job, { rank, worldSize, onStep: (e) => stepSeconds.push(e.seconds) });
  const report: RankReport = { stepSeconds, profile: r.profile, peakActivationBytes: r.peakActivationBytes, maxRssBytes: process.resourceUsage().maxRSS * 1024, finalLoss: r.finalLoss };
  process.send!(report);
  await engine.close();
  transport?.close();
  await rdv.close();
}

async function runGang(job: XAttnJob): Promise<RankReport[]> {
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const world = job.spec.workers;
  return Promise.all(
    Array.from({ length: world }, (_, rank) => {
      // One core set per rank: P pools of all cores would oversubscribe the machine.
      const threads = process.env.XATTN_CPU_THREADS ?? String(Math.max(1, Math.floor(cpus().length / world)));
      const env = { ...process.env, XATTN_CPU_THREADS: threads, BENCH_RANK: '1', BENCH_JOB: JSON.stringify(job), RANK: String(rank), WORLD_SIZE: String(world), MASTER_PORT: String(port), XATTN_JOB_TOKEN: token };
      const child = fork(self, [], { env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return new Promise<RankReport>((resolve, reject) => {
        let got: RankReport | undefined;
        child.on('message', (m) => (got = m as RankReport));
        child.on('exit', (code) => (code === 0 && got ? resolve(got) : reject(new Error(`bench rank ${rank} exited with ${code}`))));
      });
    }),
  );
}

function summarizeGang(job: XAttnJob, reports: RankReport[]) {
  const P = job.spec.workers;
  // Step 1 pays one-time costs (schedules, first allocations): the mean is over the rest.
  const mean = (xs: number[]) => xs.slice(1).reduce((a, b) => a + b, 0) / Math.max(1, xs.length - 1);
  const step = Math.max(...reports.map((r) => mean(r.stepSeconds)));
  const flops = stepFlops(resolveModel(job.spec.model), job.spec.workload, job.spec.attention.recomputeKV);
  const r0 = reports[0]!;
  const total = Object.values(r0.profile.seconds).reduce((a, b) => a + b, 0);
  const share = Object.fromEntries(Object.entries(r0.profile.seconds).map(([k, v]) => [k, +(v / total).toFixed(4)]));
  return {
    workers: P,
    recomputeKV: job.spec.attention.recomputeKV,
    stepMs: +(step * 1000).toFixed(2),
    modelTflopsPerWorker: +(flops.model / P / step / 1e12).toFixed(6),
    executedTflopsPerWorker: +((flops.model + flops.recompute) / P / step / 1e12).toFixed(6),
    share,
    commBytesPerStepPerWorker: Math.round(Object.values(r0.profile.comm).reduce((a, c) => a + c.bytes, 0) / r0.stepSeconds.length),
    peakActivationBytes: Math.max(...reports.map((r) => r.peakActivationBytes)),
    peakRssBytes: Math.max(...reports.map((r) => r.maxRssBytes)),
    finalLoss: r0.finalLoss,
  };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const steps = Number(arg('steps', '5'));
  const visualTokens = Number(arg('visual-tokens', '16384'));
  const worldSizes = arg('world-sizes', '1,2').split(',').map(Number);
  const device = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores, cpu engine)`;
  console.log(`device: ${device}`);
  const rows = [];
  for (const P of worldSizes) {
    const byMode: Record<string, ReturnType<typeof summarizeGang>> = {};
    for (const recomputeKV of [false, true]) {
      const job = benchJob(visualTokens, steps, P, recomputeKV);
      const s = summarizeGang(job, await runGang(job));
      byMode[recomputeKV ? 'on' : 'off'] = s;
      rows.push(s);
      const pct = (k: string) => `${((s.share[k] ?? 0) * 100).toFixed(0)}%`;
      console.log(
        `P=${P} recompute ${recomputeKV ? 'on ' : 'off'}: ${s.stepMs.toFixed(1)} ms/step, ${(s.modelTflopsPerWorker * 1000).toFixed(2)} GFLOP/s/worker ` +
          `(attention ${pct('attention')}, projections ${pct('projection')}, comm ${pct('comm')}, other ${pct('other')}), ` +
          `peak activations ${(s.peakActivationBytes / 2 ** 20).toFixed(1)} MiB, peak RSS ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      );
    }
    const on = byMode.on!, off = byMode.off!;
    console.log(`  recompute: ${(on.stepMs / off.stepMs).toFixed(3)}x step time, ${(off.peakActivationBytes / on.peakActivationBytes).toFixed(2)}x less activation memory`);
  }
  const out = {
    device,
    date: new Date().toISOString(),
    shape: { ...benchJob(visualTokens, steps, 1, true).spec.model, textTokens: 64, visualTokens, batch: 1, dtype: 'float32', steps },
    threadsPerRank: process.env.XATTN_CPU_THREADS ?? `cores / world size (${cpus().length} cores)`,
    runs: rows,
  };
  mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  const file = path.join(root, `bench/results/train-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${path.relative(root, file)}`);
}

await (process.env.BENCH_RANK ? rankMain() : main());
