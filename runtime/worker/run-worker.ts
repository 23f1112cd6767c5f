// One worker process: environment contract -> manifest -> rendezvous -> engine -> run -> summary.
import { readXAttnJob } from '../../crds/validate.js';
import type { XAttnJob } from '../../crds/types.js';
import { Engine } from '../engine/engine.js';
import { joinRendezvous, type Rendezvous } from '../rendezvous/index.js';
import { connectTcpTransport } from '../rendezvous/transport.js';
import { runAttentionBenchmark, type RankResult } from './attention-bench.js';
import { readRankEnv } from './env.js';
import type { Emit } from './events.js';
import { summarize, type RunSummary } from './summary.js';
import type { RankEnv } from '../../crds/env.js';
import { benchmarkSample, startWorkerTelemetry } from '../metrics/worker-telemetry.js';
import { resolveModel } from '../model/presets.js';
import { runTrainMode } from '../train/worker-mode.js';

export interface WorkerOptions {
  env?: NodeJS.ProcessEnv;
  emit?: Emit;
  /** Rendezvous and transport timeout. */
  timeoutMs?: number;
}

export function chooseBackend(job: XAttnJob, env: NodeJS.ProcessEnv): 'cpu' | 'cuda' {
  const forced = env.XATTN_BACKEND;
  if (forced === 'cpu' || forced === 'cuda') return forced;
  return job.spec.gpusPerWorker > 0 && Engine.cudaDeviceCount() > 0 ? 'cuda' : 'cpu';
}

/** Why a job that asks for GPUs runs on the CPU engine (undefined where it does not, or was told to). */
export function cpuFallbackReason(job: XAttnJob, env: NodeJS.ProcessEnv, backend: string, cudaBuilt = Engine.cudaBuilt()): string | undefined {
  if (job.spec.gpusPerWorker === 0 || backend !== 'cpu' || env.XATTN_BACKEND === 'cpu') return undefined;
  const why = cudaBuilt ? 'no CUDA device is visible' : 'the native addon was built without CUDA (no nvcc when it was built)';
  return `gpusPerWorker is ${job.spec.gpusPerWorker} but ${why}: running on the CPU engine, which is far slower at GPU-sized shapes`;
}

export async function connectEngine(engine: Engine, rdv: Rendezvous, env: RankEnv, backend: string, timeoutMs: number): Promise<unknown> {
  if (env.worldSize === 1) return undefined;
  if (backend === 'cuda') {
    const id = env.rank === 0 ? engine.ncclUniqueId().toString('base64') : '';
    const ids = await rdv.allGather('nccl-id', id);
    await engine.useNccl({ id: Buffer.from(ids[0]!, 'base64'), rank: env.rank, worldSize: env.worldSize, timeoutMs });
    return undefined;
  }
  const transport = await connectTcpTransport(rdv, { rank: env.rank, worldSize: env.worldSize, token: env.jobToken, timeoutMs });
  engine.useTcp(transport);
  return transport;
}

export async function runWorker(opts: WorkerOptions = {}): Promise<RunSummary | undefined> {
  const procEnv = opts.env ?? process.env;
  const emit: Emit = opts.emit ?? (() => {});
  const env = readRankEnv(procEnv);
  const job = readXAttnJob(env.config);
  const timeoutMs = opts.timeoutMs ?? Number(procEnv.XATTN_TIMEOUT_MS ?? 120_000);
  const backend = chooseBackend(job, procEnv);
  const fallback = env.rank === 0 ? cpuFallbackReason(job, procEnv, backend) : undefined;
  if (fallback) process.stderr.write(`xattn: warning: ${fallback}\n`);
  // Metrics first, so /healthz answers while the peers gather.
  const telemetry = await startWorkerTelemetry({ rank: env.rank, worldSize: env.worldSize, backend, algorithm: job.spec.attention.algorithm }, env.metricsPort);
  const rdv = await joinRendezvous({
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    rank: env.rank,
    worldSize: env.worldSize,
    token: env.jobToken,
    timeoutMs,
    jobName: env.jobName,
  }).catch(async (e) => {
    await telemetry.close();
    throw e;
  });
  const engine = Engine.create({ backend, device: env.localRank });
  let transport: unknown;
  try {
    transport = await connectEngine(engine, rdv, env, backend, timeoutMs);
    emit({ type: 'ready', rank: env.rank, worldSize: env.worldSize, backend });
    const { metrics } = telemetry;
    const result: RankResult & { finalLoss?: number } =
      job.spec.workload.mode === 'train'
        ? await runTrainMode(engine, job, { rank: env.rank, worldSize: env.worldSize, checkpointDir: env.checkpointDir, emit, metrics })
        : await runAttentionBenchmark(engine, job, env.rank, env.worldSize, (e) => {
            if (e.step > 0) metrics.recordStep(benchmarkSample(job, env.rank, env.worldSize, e));
            metrics.recordLink(() => engine.info().linkGbps);
            emit({ type: 'step', rank: env.rank, step: e.step, steps: e.steps, seconds: e.seconds, bytesSent: e.bytesSent });
          });
    const all = (await rdv.allGather('result', JSON.stringify(result))).map((s) => JSON.parse(s) as RankResult);
    if (env.rank !== 0) return undefined;
    const summary = summarize(job, backend, all, {
      loss: result.finalLoss,
      layers: job.spec.workload.mode === 'train' ? resolveModel(job.spec.model).layers : 1,
      linkGbps: engine.info().linkGbps, // agreed by every rank, so rank 0's is the job's
      linkPath: engine.info().transportPath,
    });
    emit({ type: 'summary', rank: env.rank, summary });
    return summary;
  } finally {
    await telemetry.close();
    await engine.close();
    (transport as { close?: () => void } | undefined)?.close?.();
    await rdv.close();
  }
}
