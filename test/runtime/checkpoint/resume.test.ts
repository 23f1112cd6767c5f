// Surviving restarts: a gang whose worker is killed (or asked to stop) mid-run restarts from its newest
// checkpoint and ends with exactly the state of an uninterrupted run (weights and AdamW moments,
// byte for byte: training is deterministic).
import { describe, expect, it } from 'vitest';
import { findLatestCheckpoint } from '../../../runtime/checkpoint/read.js';
import { tempDirs } from '../train/temp-dirs.js';
import { runGang, startGang, trainJob } from '../train/workers.js';

const STEPS = 30;
const job = trainJob('resume', { workers: 2, steps: STEPS, checkpoint: { everySteps: 4, keep: 2 } });
const tempDir = tempDirs('xattn-resume');

const latest = (dir: string) =>
  findLatestCheckpoint(dir, (m) => {
    throw new Error(m);
  });

/** Restarts the gang on dir; returns the first step it ran and the final checkpoint's data hash. */
async function restart(dir: string): Promise<{ firstStep: number; sha256: string }> {
  const g = await runGang(job, { checkpointDir: dir });
  const first = g.events[0]!.find((e) => e.type === 'step');
  const end = await latest(dir);
  expect(end!.manifest.step).toBe(STEPS);
  return { firstStep: first?.type === 'step' ? first.step : NaN, sha256: end!.manifest.file.sha256 };
}

describe('resume after interruption', () => {
  let baseline = '';

  it('an uninterrupted run checkpoints every 4 steps and at the end', async () => {
    const dir = tempDir();
    await runGang(job, { checkpointDir: dir });
    const end = await latest(dir);
    expect(end!.manifest).toMatchObject({ step: STEPS, worldSize: 2, rng: { nextStep: STEPS + 1 } });
    baseline = end!.manifest.file.sha256;
  });

  it('a killed worker ends the run; the restarted gang resumes and reaches the same state', async () => {
    const dir = tempDir();
    const g = await startGang(job, { checkpointDir: dir });
    g.onEvent((rank, e) => {
      if (rank === 0 && e.type === 'step' && e.step === 9) g.children[1]!.kill('SIGKILL');
    });
    const [r0, r1] = await g.exits;
    expect(r1!.signal).toBe('SIGKILL');
    expect(r0!.code, 'the surviving rank must fail, not hang').not.toBe(0);
    const saved = (await latest(dir))!.manifest.step;
    expect(saved % 4).toBe(0);
    expect(saved).toBeGreaterThanOrEqual(8);
    expect(saved).toBeLessThan(STEPS);
    const again = await restart(dir);
    expect(again.firstStep).toBe(saved + 1);
    expect(again.sha256).toBe(baseline);
  });

  it('SIGTERM to one rank stops every rank at the same step boundary, after a checkpoint', async () => {
    const dir = tempDir();
    const g = await startGang(job, { checkpointDir: dir });
    g.onEvent((rank, e) => {
      if (rank === 0 && e.type === 'step' && e.step === 10) g.children[1]!.kill('SIGTERM');
    });
    const exits = await g.exits;
    const lastStep = g.events.map((ev) => Math.max(...ev.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? e.step : 0))));
    expect(lastStep[0]).toBe(lastStep[1]);
    expect(lastStep[0]).toBeLessThan(STEPS);
    for (const [rank, ev] of g.events.entries()) {
      expect(exits[rank]!.code).not.toBe(0);
      expect(ev.find((e) => e.type === 'error')).toMatchObject({ code: 'XATTN_E_INTERRUPTED' });
    }
    expect((await latest(dir))!.manifest.step).toBe(lastStep[0]);
    const again = await restart(dir);
    expect(again.firstStep).toBe(lastStep[0]! + 1);
    expect(again.sha256).toBe(baseline);
  });
});
