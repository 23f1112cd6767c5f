// CheckpointWriter snapshots the state into host buffers it keeps for the next save: each checkpoint
// must hold the state of its own step, never a later one, and the writer counts what the saves cost.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listManifests, readManifest } from '../../../runtime/checkpoint/read.js';
import { SafetensorsFile } from '../../../runtime/data/safetensors.js';
import { readXAttnJob } from '../../../crds/validate.js';
import { resolveModel } from '../../../runtime/model/presets.js';
import { CheckpointWriter } from '../../../runtime/train/checkpointing.js';
import type { Trainer } from '../../../runtime/train/trainer.js';
import { tempDirs } from '../train/temp-dirs.js';

const tempDir = tempDirs('xattn-writer');
const job = readXAttnJob(fileURLToPath(new URL('../../../examples/train-tiny.yaml', import.meta.url)));

/** A trainer whose params and AdamW moments are host arrays, downloaded like engine tensors. */
function fakeTrainer(specs: { name: string; shape: number[] }[]) {
  const state = (k: number) => specs.map((s) => new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(k));
  const t = { params: state(1), m: state(2), v: state(3) };
  const tensor = (values: () => Float32Array) => ({
    downloadInto: async (into: Float32Array) => void into.set(values()),
  });
  const trainer = {
    params: { specs, tensors: specs.map((_, i) => tensor(() => t.params[i]!)) },
    opt: { m: { tensors: specs.map((_, i) => tensor(() => t.m[i]!)) }, v: { tensors: specs.map((_, i) => tensor(() => t.v[i]!)) } },
  } as unknown as Trainer;
  return { trainer, set: (k: number) => Object.values(t).forEach((arrays, g) => arrays.forEach((a) => a.fill(k + g))) };
}

describe('CheckpointWriter', () => {
  it('writes each save from its own step, reusing its buffers, and counts the saves', async () => {
    const dir = tempDir();
    const specs = [{ name: 'layer0.wq', shape: [4, 8] }, { name: 'layer0.gate', shape: [1] }];
    const { trainer, set } = fakeTrainer(specs);
    const w = new CheckpointWriter({ dir, keep: 3, job, worldSize: 1, shape: resolveModel(job.spec.model), warn: () => {} });
    set(10);
    await w.save(trainer, 1);
    set(20); // the next step's update, while step 1's write may still run
    await w.save(trainer, 2);
    await w.flush();
    for (const [step, k] of [[1, 10], [2, 20]] as const) {
      const m = await readManifest(path.join(dir, `step-0000000${step}.json`));
      const f = SafetensorsFile.open(path.join(dir, m.file.name));
      expect(Array.from(f.readFloat32('param/layer0.wq'))).toEqual(new Array(32).fill(k));
      expect(Array.from(f.readFloat32('adam_m/layer0.gate'))).toEqual([k + 1]);
      expect(Array.from(f.readFloat32('adam_v/layer0.wq'))).toEqual(new Array(32).fill(k + 2));
      f.close();
    }
    expect((await listManifests(dir)).map((e) => e.step)).toEqual([2, 1]);
    expect(w.stats.saved).toBe(2);
    expect(w.stats.copySeconds).toBeGreaterThanOrEqual(0);
    expect(w.stats.waitSeconds).toBeGreaterThanOrEqual(0);
    expect(w.stats.writeSeconds).toBeGreaterThan(0);
  });
});
