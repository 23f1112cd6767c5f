// Benchmark mode: distributed cross-attention forward + backward at the manifest's shapes.
import type { XAttnJob } from '../../crds/types.js';
import { Engine, shardOf, type DistCall, type PassGathered, type PassPartials, type Tensor } from '../engine/engine.js';
import { resolveModel } from '../model/presets.js';
import type { CheckpointStats } from '../train/checkpointing.js';
import { median } from './median.js';
import { randn } from './random.js';

export interface StepEvent {
  step: number;
  steps: number;
  seconds: number;
  bytesSent: number;
  commWaitSeconds: number;
}

export interface RankResult {
  rank: number;
  timedSteps: number;
  meanStepSeconds: number;
  /** The median timed step: the steady pace, where a few slow steps (checkpoints) pull the mean up. */
  medianStepSeconds?: number;
  bytesSentPerStep: number;
  commWaitSecondsPerStep: number;
  /** Training: the median step's time preparing its batch (data read or synthetic targets), outside its step
   * time; the median, as a peer's checkpoint can hold up a batch's first exchange. */
  medianBatchSeconds?: number;
  /** Training: the mean time a step's attention calls took (device time on GPU, less the transfer waits the
   * host saw), over the steps after the first. */
  attentionSecondsPerStep?: number;
  /** How LV-XAttn's partials travelled in the last step, and whether it gathered its blocks (absent where the
   * job made no attention call). */
  partials?: PassPartials;
  gathered?: PassGathered;
  /** Training on the rank that writes checkpoints: how many, and what they cost. */
  checkpoints?: CheckpointStats;
}

export function benchmarkCall(job: XAttnJob, algorithm = job.spec.attention.algorithm, comm = true): DistCall {
  const m = resolveModel(job.spec.model);
  const w = job.spec.workload;
  return {
    algorithm,
    dims: { batch: w.batch, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim, dtype: w.dtype },
    lqTotal: w.textTokens,
    lkvTotal: w.visualTokens,
    comm,
    partials: job.spec.attention.partials,
  };
}

/** Runs warm-up + timed steps; onStep sees every step (warm-up ones have step <= 0). */
export async function runAttentionBenchmark(
  engine: Engine,
  job: XAttnJob,
  rank: number,
  worldSize: number,
  onStep: (e: StepEvent) => void,
): Promise<RankResult> {
  const call = benchmarkCall(job);
  const { batch, heads, kvHeads, headDim, dtype } = call.dims;
  const lq = shardOf(call.lqTotal, worldSize, rank).length;
  const lkv = shardOf(call.lkvTotal, worldSize, rank).length;
  const seed = job.spec.workload.seed * 1000 + rank * 7;
  const owned: Tensor[] = [];
  const up = async (n: number, shape: number[], s: number) => {
    const t = await engine.upload(randn(n, s), shape, dtype);
    owned.push(t);
    return t;
  };
  const q = await up(batch * lq * heads * headDim, [batch, lq, heads, headDim], seed);
  const k = await up(batch * lkv * kvHeads * headDim, [batch, lkv, kvHeads, headDim], seed + 1);
  const v = await up(batch * lkv * kvHeads * headDim, [batch, lkv, kvHeads, headDim], seed + 2);
  const dout = await up(batch * lq * heads * headDim, [batch, lq, heads, headDim], seed + 3);

  const warmup = job.spec.workload.warmupSteps;
  const steps = job.spec.workload.steps;
  let bytes = 0, wait = 0;
  const times: number[] = []; // the timed steps' seconds
  let partials: PassPartials | undefined;
  let gathered: PassGathered | undefined;
  try {
    for (let i = 1 - warmup; i <= steps; i++) {
      const t0 = performance.now();
      const f = await engine.attentionForward(call, { q, k, v });
      const b = await engine.attentionBackward(call, { q, k, v, o: f.o, lse: f.lse, dout });
      await engine.synchronize(); // calls resolve once queued on CUDA: the step ends when the device is done
      const dt = (performance.now() - t0) / 1000;
      for (const t of [f.o, f.lse, b.dq, b.dk, b.dv]) t.dispose();
      partials = { forward: f.partials, backward: b.partials };
      gathered = { forward: f.gatheredBlocks, backward: b.gatheredBlocks };
      const ev = { step: i, steps, seconds: dt, bytesSent: f.bytesSent + b.bytesSent, commWaitSeconds: f.commWaitSeconds + b.commWaitSeconds };
      if (i > 0) {
        times.push(dt);
        bytes += ev.bytesSent;
        wait += ev.commWaitSeconds;
      }
      onStep(ev);
    }
  } finally {
    for (const t of owned) t.dispose();
  }
  const timed = times.length;
  return {
    rank,
    timedSteps: timed,
    meanStepSeconds: times.reduce((a, b) => a + b, 0) / Math.max(1, timed),
    ...(times.length ? { medianStepSeconds: median(times) } : {}),
    bytesSentPerStep: bytes / Math.max(1, timed),
    commWaitSecondsPerStep: wait / Math.max(1, timed),
    ...(partials ? { partials } : {}),
    ...(gathered ? { gathered } : {}),
  };
}
