// A step's time covers training only: the batch (here the teacher's forward, which makes the synthetic
// targets) is timed apart. On CUDA every op resolves once queued, so host clocks cannot split the two.
// This stand-in gives the CPU engine a device queue: each attention call queues CALL_SECONDS of device
// work; synchronize waits for the queue, stopwatch marks are reached when the queue gets to them, and
// attentionMs sums the device time of the calls made with `timed`.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../runtime/engine/engine.js';
import { runTraining, type TrainStepEvent } from '../../../runtime/train/run-training.js';
import { trainJob } from './workers.js';

const CALL_SECONDS = 0.1;
const sleepUntil = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms - performance.now())));

function queuedDevice(engine: Engine): Engine {
  let busyUntil = 0; // performance.now() ms when the queued work ends
  let timedMs = 0;
  const marks: number[] = [];
  const reached = () => Math.max(performance.now(), busyUntil);
  const queued: Record<string, () => unknown> = {
    synchronize: () => sleepUntil(busyUntil),
    stopwatchMark: async () => void marks.push(reached()),
    stopwatchMs: async () => (await sleepUntil(marks.at(-1)!), marks.at(-1)! - marks.at(-2)!),
    attentionMs: async () => (await sleepUntil(busyUntil), timedMs - (timedMs = 0)),
  };
  return new Proxy(engine, {
    get(target, key) {
      if (key === 'attentionForward' || key === 'attentionBackward')
        return (...args: unknown[]) => {
          busyUntil = reached() + CALL_SECONDS * 1000;
          if ((args[0] as { timed?: boolean }).timed) timedMs += CALL_SECONDS * 1000;
          return (target[key] as (...a: unknown[]) => unknown).apply(target, args);
        };
      if (typeof key === 'string' && key in queued) return queued[key];
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const engines: Engine[] = [];
afterAll(() => engines.forEach((e) => e.close()));

describe('training step time', () => {
  it('counts the batch\'s queued device work as the batch\'s, not the step\'s', async () => {
    const engine = Engine.create();
    engines.push(engine);
    const events: TrainStepEvent[] = [];
    const job = trainJob('step-time', { workers: 1, steps: 3 }); // 2 layers
    const r = await runTraining(queuedDevice(engine), job, { rank: 0, worldSize: 1, onStep: (e) => events.push(e) });
    expect(events).toHaveLength(3);
    for (const e of events) {
      // The teacher's forward queues 2 attention calls, the step 4 (2 forward, 2 backward); the host work
      // of this tiny model is milliseconds.
      expect(e.batchSeconds).toBeGreaterThanOrEqual(2 * CALL_SECONDS * 0.95);
      expect(e.batchSeconds).toBeLessThan(3 * CALL_SECONDS);
      expect(e.seconds).toBeGreaterThanOrEqual(4 * CALL_SECONDS * 0.95);
      expect(e.seconds).toBeLessThan(5 * CALL_SECONDS);
    }
    // Like the step time's, the batch's median leaves out the run's first step (one-time costs).
    // The step's own attention calls are timed on the device; the teacher's (data) are not.
    expect(r.attentionSecondsPerStep).toBeCloseTo(4 * CALL_SECONDS, 6);
    expect(r.medianBatchSeconds).toBe(Math.max(events[1]!.batchSeconds, events[2]!.batchSeconds));
  });
});
