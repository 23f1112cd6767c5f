// Training from safetensors files on a mounted path (workload.data.source: safetensors).
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../runtime/engine/engine.js';
import { writeSafetensors } from '../../../runtime/data/safetensors-write.js';
import { runTraining } from '../../../runtime/train/run-training.js';
import { randn } from '../../../runtime/worker/random.js';
import { tempDirs } from './temp-dirs.js';
import { trainJob } from './workers.js';

const cleanup: (() => void)[] = [];
afterAll(() => cleanup.forEach((c) => c()));
const tempDir = tempDirs('xattn-st-train');

describe('safetensors training data', () => {
  it('trains on the files and the loss falls', async () => {
    const dir = tempDir();
    const job = trainJob('st-data', { workers: 1, steps: 30 }, { data: { source: 'safetensors', path: dir }, learningRate: 0.03 });
    const { batch: B, textTokens: Lq, visualTokens: Lkv } = job.spec.workload;
    const dx = job.spec.model.textHidden!, dy = job.spec.model.visualHidden!;
    // One file: every step sees the same batch, whose target is x plus a fixed offset the stack can fit.
    const x = randn(B * Lq * dx, 1);
    const target = x.map((v, i) => v + 0.5 * Math.sin(i));
    writeSafetensors(path.join(dir, 'batch-0.safetensors'), [
      { name: 'x', dtype: 'F32', shape: [B, Lq, dx], data: x },
      { name: 'y', dtype: 'F32', shape: [B, Lkv, dy], data: randn(B * Lkv * dy, 2) },
      { name: 'target', dtype: 'F32', shape: [B, Lq, dx], data: target },
    ]);
    const engine = Engine.create();
    cleanup.push(() => engine.close());
    const r = await runTraining(engine, job, { rank: 0, worldSize: 1 });
    const first = r.losses[0]!.loss, last = r.finalLoss;
    // The first loss is exactly the mean of (0.5 sin i)² (the student's gates start at 0, so out = x).
    const want = target.reduce((s, t, i) => s + (t - x[i]!) ** 2, 0) / target.length;
    expect(Math.abs(first - want) / want).toBeLessThan(1e-5);
    expect(last).toBeLessThan(0.8 * first);
  });
});
