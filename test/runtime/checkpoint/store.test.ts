// Checkpoint files: round trip, retention, detection of corrupt or partial checkpoints, and failures
// (full disk, unwritable directory) that must leave the previous checkpoint intact.
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeIO, type CheckpointIO } from '../../../runtime/checkpoint/fsio.js';
import { findLatestCheckpoint, listManifests } from '../../../runtime/checkpoint/read.js';
import { pruneCheckpoints } from '../../../runtime/checkpoint/retention.js';
import { writeCheckpoint, type CheckpointContent } from '../../../runtime/checkpoint/write.js';
import { SafetensorsFile } from '../../../runtime/data/safetensors.js';
import { tempDirs } from '../train/temp-dirs.js';

const tempDir = tempDirs('xattn-ckpt');

const model = { layers: 1, heads: 2, kvHeads: 1, headDim: 4, textHidden: 8, visualHidden: 6 };

function content(step: number): CheckpointContent {
  const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => step * 1000 + k * 100 + i * 0.5);
  return {
    step,
    job: 'ckpt-test',
    worldSize: 2,
    model,
    rng: { kind: 'counter', seed: 9, nextStep: step + 1 },
    optimizer: { kind: 'adamw', step },
    tensors: [
      { name: 'param/w', shape: [3, 4], read: async () => values(12, 1) },
      { name: 'adam_m/w', shape: [3, 4], read: async () => values(12, 2) },
      { name: 'param/gate', shape: [1], read: async () => values(1, 3) },
    ],
  };
}

async function writeSteps(dir: string, steps: number[], keep = 10): Promise<void> {
  for (const s of steps) {
    await writeCheckpoint(dir, content(s));
    await pruneCheckpoints(dir, keep, () => {});
  }
}

const noWarnings = (m: string) => {
  throw new Error(`unexpected warning: ${m}`);
};

function collectWarnings(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

/** Node's file operations, except that writes fail like a full disk once `budget` bytes are written. */
function fullDiskAfter(budget: number, renamed: string[]): CheckpointIO {
  let written = 0;
  return {
    ...nodeIO,
    async rename(from, to) {
      await nodeIO.rename(from, to);
      renamed.push(path.basename(to));
    },
    async create(p) {
      const f = await nodeIO.create(p);
      return {
        ...f,
        async write(data) {
          if (written + data.length > budget) {
            const room = Math.max(0, budget - written);
            if (room) await f.write(data.subarray(0, room));
            written += room;
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
          }
          written += data.length;
          await f.write(data);
        },
      };
    },
  };
}

describe('checkpoint files', () => {
  it('round-trip tensors and the manifest', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, content(7));
    const found = await findLatestCheckpoint(dir, noWarnings);
    expect(found!.manifest).toMatchObject({ step: 7, worldSize: 2, model, rng: { seed: 9, nextStep: 8 }, tensors: ['param/w', 'adam_m/w', 'param/gate'] });
    const f = SafetensorsFile.open(found!.dataPath);
    for (const t of content(7).tensors) {
      expect(f.tensor(t.name).shape).toEqual(t.shape);
      expect(f.readFloat32(t.name)).toEqual(await t.read());
    }
    f.close();
  });

  it('keeps the newest K and removes the data of the others', async () => {
    const dir = tempDir();
    await writeSteps(dir, [1, 2, 3, 4, 5], 2);
    expect((await listManifests(dir)).map((m) => m.step)).toEqual([5, 4]);
    const files = readdirSync(dir).sort();
    expect(files.filter((f) => f.endsWith('.safetensors'))).toHaveLength(2);
    expect(files.every((f) => f.startsWith('step-00000004') || f.startsWith('step-00000005'))).toBe(true);
  });

  it('skips a corrupt newest checkpoint with a warning', async () => {
    const dir = tempDir();
    await writeSteps(dir, [2, 4]);
    const newest = (await findLatestCheckpoint(dir, noWarnings))!;
    const bytes = readFileSync(newest.dataPath);
    bytes[bytes.length - 3]! ^= 0x40; // one flipped bit in the tensor data
    writeFileSync(newest.dataPath, bytes);
    const w = collectWarnings();
    expect((await findLatestCheckpoint(dir, w.warn))!.manifest.step).toBe(2);
    expect(w.messages.join()).toMatch(/step 4 .*SHA-256/);
  });

  it('skips partial checkpoints: truncated data, missing data, unparseable or incomplete manifest', async () => {
    const dir = tempDir();
    await writeSteps(dir, [1, 2, 3, 4]);
    const all = await listManifests(dir);
    const data = (step: number) => path.join(dir, JSON.parse(readFileSync(all.find((m) => m.step === step)!.file, 'utf8')).file.name);
    truncateSync(data(4), 100);
    rmSync(data(3));
    writeFileSync(all.find((m) => m.step === 2)!.file, '{"format": "xattn-checkpoint", "ver');
    const w = collectWarnings();
    expect((await findLatestCheckpoint(dir, w.warn))!.manifest.step).toBe(1);
    expect(w.messages).toHaveLength(3);
    expect(w.messages[0]).toMatch(/step 4 .*partial write/);
    expect(w.messages[1]).toMatch(/step 3 .*missing/);
    expect(w.messages[2]).toMatch(/step 2 .*unreadable/);
  });

  it('finds nothing in a missing or empty directory', async () => {
    expect(await findLatestCheckpoint(path.join(tempDir(), 'absent'), noWarnings)).toBeUndefined();
    expect(await findLatestCheckpoint(tempDir(), noWarnings)).toBeUndefined();
  });

  // The data file of these checkpoints is 356 bytes and the manifest ~640: 300 fails inside the data,
  // 700 inside the manifest, after the data file was already renamed into place.
  for (const [stage, budget, renames] of [['data', 300, 0], ['manifest', 700, 1]] as const) {
    it(`a full disk while writing the ${stage} keeps the previous checkpoint and leaves no debris`, async () => {
      const dir = tempDir();
      await writeSteps(dir, [3]);
      const before = readdirSync(dir).sort();
      const renamed: string[] = [];
      const err = await writeCheckpoint(dir, content(6), fullDiskAfter(budget, renamed)).catch((e) => e);
      expect(renamed.map((n) => n.endsWith('.safetensors'))).toEqual(Array(renames).fill(true));
      expect(err.code).toBe('XATTN_E_CHECKPOINT');
      expect(err.message).toMatch(/step 6 .*no space left on the device \(ENOSPC\).*untouched/);
      expect(readdirSync(dir).sort()).toEqual(before);
      const found = await findLatestCheckpoint(dir, noWarnings);
      expect(found!.manifest.step).toBe(3);
    });
  }

  it('reports an unwritable checkpoint directory clearly and keeps what exists', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    for (const target of [file, path.join(file, 'sub')]) {
      const err = await writeCheckpoint(target, content(1)).catch((e) => e);
      expect(err.code).toBe('XATTN_E_CHECKPOINT');
      expect(err.message).toMatch(/cannot create the checkpoint directory .*not-a-dir.*(EEXIST|ENOTDIR)/);
    }
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('removes temp files of an interrupted write when the next checkpoint lands', async () => {
    const dir = tempDir();
    await writeSteps(dir, [1]);
    appendFileSync(path.join(dir, '.tmp-step-00000002-deadbeef.safetensors'), 'half a checkpoint');
    await writeSteps(dir, [2]);
    expect(readdirSync(dir).some((f) => f.startsWith('.tmp-'))).toBe(false);
    expect(existsSync(path.join(dir, 'step-00000001.json'))).toBe(true);
  });
});
