// Training mode of a worker: resume, then steps until workload.steps, with checkpoints every N steps,
// on a stop request (SIGTERM) at a step boundary, and at the end; step events and metrics every step.
import type { XAttnJob } from '../../crds/types.js';
import type { Engine } from '../engine/engine.js';
import { Profile } from '../model/profile.js';
import { stepFlops } from '../model/flops.js';
import type { CheckpointIO } from '../checkpoint/fsio.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { RankResult } from '../worker/attention-bench.js';
import { median } from '../worker/median.js';
import { CheckpointWriter, resumeTraining, type CheckpointStats, type SaveContext } from './checkpointing.js';
import { Trainer } from './trainer.js';

export interface TrainStepEvent {
  step: number;
  steps: number;
  seconds: number;
  /** Preparing the step's batch (a data read, or the teacher's forward for synthetic targets): not in `seconds`. */
  batchSeconds: number;
  bytesSent: number;
  loss: number;
  lr: number;
}

export interface TrainingOptions {
  rank: number;
  worldSize: number;
  checkpointDir?: string;
  onStep?: (e: TrainStepEvent) => void;
  /** Called before each step; true asks every rank to stop after the current step boundary. */
  stopRequested?: () => boolean;
  metrics?: WorkerMetrics;
  warn?: (msg: string) => void;
  log?: (msg: string) => void;
  /** Overrides attention.recomputeKV (the bench compares both). */
  recomputeKV?: boolean;
  checkpointIO?: CheckpointIO;
  /** Wait for the device after every op so the profile's shares are exact (benchmarks; costs overlap). */
  exactProfile?: boolean;
}

export interface TrainingResult extends RankResult {
  /** The step training resumed after (0: fresh). */
  startStep: number;
  /** The last step completed. */
  lastStep: number;
  finalLoss: number;
  losses: { step: number; loss: number }[];
  /** Stopped early on request (the state was checkpointed when a directory is set). */
  stopped: boolean;
  /** Peak bytes of activations held by the model (weights and optimizer state excluded). */
  peakActivationBytes: number;
  /** Time and communication summed over the steps run. */
  profile: Profile;
  /** Rank 0 with a checkpoint directory: what its checkpoints cost. */
  checkpoints?: CheckpointStats;
}

export async function runTraining(engine: Engine, job: XAttnJob, o: TrainingOptions): Promise<TrainingResult> {
  const warn = o.warn ?? ((m: string) => process.stderr.write(`xattn: warning: ${m}\n`));
  const log = o.log ?? ((m: string) => process.stderr.write(`xattn: ${m}\n`));
  const trainer = await Trainer.create(engine, job, o.rank, o.worldSize, { recomputeKV: o.recomputeKV, exactProfile: o.exactProfile });
  const { shape, lq, lkv, profile, ledger } = trainer.ctx;
  const total = new Profile();
  const w = job.spec.workload;
  const save: SaveContext | undefined = o.checkpointDir
    ? { dir: o.checkpointDir, keep: job.spec.checkpoint.keep, job, worldSize: o.worldSize, shape, io: o.checkpointIO, warn }
    : undefined;
  const writer = save && o.rank === 0 ? new CheckpointWriter(save, (sec, s) => o.metrics?.recordCheckpoint(sec, s)) : undefined;
  const flops = stepFlops(shape, w, trainer.ctx.keep);
  const losses: { step: number; loss: number }[] = [];
  let firstSeconds = 0, firstBatch = 0, bytes = 0, wait = 0, attention = 0, stopped = false;
  const times: number[] = [], batchTimes: number[] = []; // every step's seconds (and its batch's) but the run's first
  try {
    const resumed = await resumeTraining(trainer, o.rank, o.checkpointDir, job, warn);
    const startStep = resumed.step;
    if (startStep > 0) o.metrics?.recordCheckpoint(0, startStep);
    if (resumed.from) log(`resumed from step ${startStep} (${resumed.from})`);
    let lastSaved = startStep, step = startStep;
    const checkpoint = async (s: number) => {
      if (!writer || s === lastSaved) return;
      await writer.save(trainer, s);
      lastSaved = s;
    };
    while (step < w.steps && !stopped) {
      step++;
      profile.reset();
      const r = await trainer.step(step, o.stopRequested?.() ?? false);
      const comm = profile.comm;
      const stepBytes = comm.attention_forward.bytes + comm.attention_backward.bytes + comm.all_reduce.bytes;
      const attnWait = comm.attention_forward.seconds + comm.attention_backward.seconds;
      // The attention calls' own time less the waits the host saw (TCP blocks the host; NCCL waits on the device).
      const attnSeconds = Math.max(0, r.attentionSeconds - attnWait);
      // The run's first step pays one-time costs (cuBLAS handles, memory pool growth, transport warm-up):
      // the mean leaves it out once there are others.
      if (step === startStep + 1) {
        firstSeconds = r.seconds;
        firstBatch = r.batchSeconds;
      } else {
        times.push(r.seconds);
        batchTimes.push(r.batchSeconds);
        attention += attnSeconds;
      }
      bytes += stepBytes;
      wait += attnWait + comm.all_reduce.seconds;
      losses.push({ step, loss: r.loss });
      total.add(profile);
      o.metrics?.recordStep({
        seconds: r.seconds,
        batchSeconds: r.batchSeconds,
        textTokens: w.batch * lq,
        visualTokens: w.batch * lkv,
        attentionFlops: flops.attention / o.worldSize,
        modelFlops: flops.model / o.worldSize,
        attentionSeconds: attnSeconds,
        comm: {
          attention: { bytes: comm.attention_forward.bytes + comm.attention_backward.bytes, seconds: attnWait },
          all_reduce: comm.all_reduce,
        },
        loss: r.loss,
        learningRate: r.lr,
      });
      o.metrics?.recordLink(() => engine.info().linkGbps);
      o.onStep?.({ step, steps: w.steps, seconds: r.seconds, batchSeconds: r.batchSeconds, bytesSent: stepBytes, loss: r.loss, lr: r.lr });
      stopped = r.stop && step < w.steps;
      const every = job.spec.checkpoint.everySteps;
      if (stopped || (every > 0 && step % every === 0)) await checkpoint(step);
    }
    if (!stopped) await checkpoint(step);
    await writer?.flush();
    if (stopped && !save) warn(`stopped after step ${step} without a checkpoint (no checkpoint directory is set)`);
    const ran = step - startStep;
    return {
      rank: o.rank,
      timedSteps: ran,
      meanStepSeconds: ran > 1 ? times.reduce((a, b) => a + b, 0) / times.length : firstSeconds,
      medianStepSeconds: ran > 1 ? median(times) : firstSeconds,
      bytesSentPerStep: bytes / Math.max(1, ran),
      commWaitSecondsPerStep: wait / Math.max(1, ran),
      medianBatchSeconds: ran > 1 ? median(batchTimes) : firstBatch,
      ...(ran > 1 ? { attentionSecondsPerStep: attention / (ran - 1) } : {}),
      startStep,
      lastStep: step,
      finalLoss: losses.length ? losses[losses.length - 1]!.loss : NaN,
      losses,
      stopped,
      peakActivationBytes: ledger.peak,
      profile: total,
      ...(writer ? { checkpoints: { ...writer.stats } } : {}),
      ...(trainer.ctx.partials.forward && trainer.ctx.partials.backward
        ? { partials: { forward: trainer.ctx.partials.forward, backward: trainer.ctx.partials.backward } }
        : {}),
      ...(trainer.ctx.gathered.forward !== undefined && trainer.ctx.gathered.backward !== undefined
        ? { gathered: { forward: trainer.ctx.gathered.forward, backward: trainer.ctx.gathered.backward } }
        : {}),
    };
  } finally {
    // On an error, still finish the write in flight: it may be the checkpoint a restart resumes from.
    await writer?.flush().catch((e) => warn(`the last checkpoint write failed too: ${(e as Error).message}`));
    trainer.dispose();
  }
}
