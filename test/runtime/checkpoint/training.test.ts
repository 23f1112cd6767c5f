// Checkpoints written by the training loop itself: a full disk mid-run fails the run with the
// checkpoint error (not silently), and the earlier checkpoint stays valid for a restart.
import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../runtime/engine/engine.js';
import { nodeIO, type CheckpointIO } from '../../../runtime/checkpoint/fsio.js';
import { findLatestCheckpoint } from '../../../runtime/checkpoint/read.js';
import { runTraining } from '../../../runtime/train/run-training.js';
import { tempDirs } from '../train/temp-dirs.js';
import { trainJob } from '../train/workers.js';

const tempDir = tempDirs('xattn-ckpt-train');
const engines: Engine[] = [];
afterAll(() => engines.forEach((e) => e.close()));

/** Node's file operations, except that writing any file of step 4 fails like a full disk. */
const diskFullAtStep4: CheckpointIO = {
  ...nodeIO,
  async create(p) {
    const f = await nodeIO.create(p);
    if (!p.includes('step-00000004')) return f;
    return { ...f, write: async () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })) };
  },
};

describe('checkpoints during training', () => {
  it('a full disk fails the run with a clear error and keeps the previous checkpoint', async () => {
    const engine = Engine.create();
    engines.push(engine);
    const dir = tempDir();
    const job = trainJob('full-disk', { workers: 1, steps: 6, checkpoint: { everySteps: 2, keep: 3 } });
    const warnings: string[] = [];
    const err = await runTraining(engine, job, { rank: 0, worldSize: 1, checkpointDir: dir, checkpointIO: diskFullAtStep4, warn: (m) => warnings.push(m) }).catch((e) => e);
    expect(err.code).toBe('XATTN_E_CHECKPOINT');
    expect(err.message).toMatch(/checkpoint of step 4 .*no space left on the device \(ENOSPC\)/);
    const found = await findLatestCheckpoint(dir, (m) => warnings.push(m));
    expect(found!.manifest.step).toBe(2);
    expect(warnings).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual([expect.stringMatching(/^step-00000002-[0-9a-f]{8}\.safetensors$/), 'step-00000002.json']);
  });
});
