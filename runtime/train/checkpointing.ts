// Training state <-> checkpoints. Rank 0 writes (weights are replicated); on start rank 0 finds the
// newest valid checkpoint and every rank receives its state through one all-reduce in which the other
// ranks contribute zeros (x + 0 = x exactly), so all ranks resume bit-identical from the same step,
// whether or not they can see the checkpoint directory.
import type { XAttnJob } from '../../crds/types.js';
import { XattnError } from '../errors.js';
import { SafetensorsFile } from '../data/safetensors.js';
import type { Tensor } from '../engine/engine.js';
import type { ModelShape } from '../model/presets.js';
import { findLatestCheckpoint } from '../checkpoint/read.js';
import { pruneCheckpoints } from '../checkpoint/retention.js';
import { writeCheckpoint, type LazyTensor } from '../checkpoint/write.js';
import type { CheckpointIO } from '../checkpoint/fsio.js';
import type { Trainer } from './trainer.js';

function stateTensors(t: Trainer): { name: string; tensor: Tensor; shape: number[] }[] {
  const groups: [string, Tensor[]][] = [['param', t.params.tensors], ['adam_m', t.opt.m.tensors], ['adam_v', t.opt.v.tensors]];
  return groups.flatMap(([prefix, ts]) => ts.map((tensor, i) => ({ name: `${prefix}/${t.params.specs[i]!.name}`, tensor, shape: t.params.specs[i]!.shape })));
}

export interface CheckpointStats {
  saved: number;
  /** Summed over the saves: training waited for the previous write to finish (one is in flight at most). */
  waitSeconds: number;
  /** Summed over the saves: training waited for the state's copy to host memory. */
  copySeconds: number;
  /** Summed over the saves: the background writes, after the copy. */
  writeSeconds: number;
}

export interface SaveContext {
  dir: string;
  keep: number;
  job: XAttnJob;
  worldSize: number;
  shape: ModelShape;
  io?: CheckpointIO;
  warn: (msg: string) => void;
}

/**
 * Rank 0's checkpoint writer. save() snapshots the state to host memory (ordered after the step's
 * optimizer update on the engine) and writes and hashes it in the background, off the event loop, so
 * the other ranks never wait on rank 0's disk (their transport would time out on a long write). One
 * write is in flight at most; a failed write (full disk, unwritable directory) is thrown by the next
 * save() or by flush().
 */
export class CheckpointWriter {
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Checkpoints written, and the seconds training waited in save() and the writes took behind it. */
  readonly stats: CheckpointStats = { saved: 0, waitSeconds: 0, copySeconds: 0, writeSeconds: 0 };
  private readonly buffers = new Map<string, Float32Array>(); // host copies of the state, by tensor name

  constructor(
    private c: SaveContext,
    private done: (seconds: number, step: number) => void = () => {},
  ) {}

  async save(t: Trainer, step: number): Promise<void> {
    const entered = performance.now();
    await this.flush();
    const t0 = performance.now();
    // Copied on the engine's thread into shared memory, where the writer's hashing thread reads them too:
    // the event loop copies nothing. The copies queue ahead of the next step's optimizer update. The
    // buffers are kept for the next save (the last write is done with them): pages already touched take
    // the copy faster than fresh ones.
    const snapshot: LazyTensor[] = await Promise.all(
      stateTensors(t).map(async (s) => {
        const n = s.shape.reduce((a, b) => a * b, 1);
        let values = this.buffers.get(s.name);
        if (values?.length !== n) this.buffers.set(s.name, (values = new Float32Array(new SharedArrayBuffer(4 * n))));
        await s.tensor.downloadInto(values);
        return { name: s.name, shape: s.shape, read: async () => values };
      }),
    );
    const copied = performance.now();
    this.stats.waitSeconds += (t0 - entered) / 1000;
    this.stats.copySeconds += (copied - t0) / 1000;
    this.pending = this.write(snapshot, step).then(
      () => {
        this.stats.saved++;
        this.stats.writeSeconds += (performance.now() - copied) / 1000;
        this.done((performance.now() - t0) / 1000, step);
      },
      (e) => void (this.failure = e),
    );
  }

  /** Waits for the write in flight; throws its error, if any. */
  async flush(): Promise<void> {
    await this.pending;
    if (this.failure !== undefined) {
      const e = this.failure;
      this.failure = undefined;
      throw e;
    }
  }

  private async write(tensors: LazyTensor[], step: number): Promise<void> {
    const c = this.c;
    await writeCheckpoint(
      c.dir,
      {
        step,
        job: c.job.metadata.name,
        worldSize: c.worldSize,
        model: c.shape,
        rng: { kind: 'counter', seed: c.job.spec.workload.seed, nextStep: step + 1 },
        optimizer: { kind: 'adamw', step },
        tensors,
      },
      c.io,
    );
    await pruneCheckpoints(c.dir, c.keep, c.warn).catch((e) => c.warn(`could not prune old checkpoints in ${c.dir}: ${e.message}`));
  }
}

const sameShape = (a: ModelShape, b: ModelShape) => (Object.keys(b) as (keyof ModelShape)[]).every((k) => a[k] === b[k]);

/**
 * Resumes every rank from rank 0's newest valid checkpoint; returns its step (0: fresh start) and, on
 * rank 0, the manifest it came from. Collective: every rank must call it.
 */
export async function resumeTraining(
  t: Trainer,
  rank: number,
  dir: string | undefined,
  job: XAttnJob,
  warn: (msg: string) => void,
): Promise<{ step: number; from?: string }> {
  const { nn, engine, shape } = t.ctx;
  const found = rank === 0 && dir ? await findLatestCheckpoint(dir, warn) : undefined;
  if (found) {
    const m = found.manifest;
    if (!sameShape(m.model, shape))
      throw new XattnError(
        'XATTN_E_CHECKPOINT',
        `checkpoint ${found.manifestPath} was written for model ${JSON.stringify(m.model)}, but this job's model is ${JSON.stringify(shape)}; use another checkpoint directory`,
      );
    if (m.rng.seed !== job.spec.workload.seed) warn(`checkpoint ${found.manifestPath} used seed ${m.rng.seed}; continuing with the job's seed ${job.spec.workload.seed}`);
  }
  const header = await nn.allReduceSum([], [found ? found.manifest.step + 1 : 0]);
  const step = header.extras[0]! - 1;
  if (step < 0) return { step: 0 };
  const targets = stateTensors(t);
  if (found) {
    const f = SafetensorsFile.open(found.dataPath);
    try {
      for (const s of targets) {
        const values = f.readFloat32(s.name);
        const tmp = await engine.upload(values, s.shape, 'float32');
        await nn.fill([s.tensor], 0);
        await nn.axpy(s.tensor, tmp, 1);
        tmp.dispose();
      }
    } finally {
      f.close();
    }
  } else {
    await nn.fill(targets.map((s) => s.tensor), 0);
  }
  await nn.allReduceSum(targets.map((s) => s.tensor));
  return { step, from: found?.manifestPath };
}
