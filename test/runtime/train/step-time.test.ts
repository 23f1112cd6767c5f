// A step's time covers training only: the batch (here the teacher's forward, which makes the synthetic
// targets) is timed apart. On CUDA every op resolves once queued, so the trainer must wait for the batch's
// device work before it starts the step's clock. This engine stand-in models that queue on the CPU
// engine: a synchronize after attention calls were queued takes DEVICE_SECONDS longer.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../runtime/engine/engine.js';
import { runTraining, type TrainStepEvent } from '../../../runtime/train/run-training.js';
import { trainJob } from './workers.js';

const DEVICE_SECONDS = 0.25;

function queuedDevice(engine: Engine): Engine {
  let queued = false;
  return new Proxy(engine, {
    get(target, key) {
      if (key === 'attentionForward' || key === 'attentionBackward')
        return (...args: unknown[]) => {
          queued = true;
          return (target[key] as (...a: unknown[]) => unknown).apply(target, args);
        };
      if (key === 'synchronize')
        return async () => {
          if (queued) await new Promise((r) => setTimeout(r, DEVICE_SECONDS * 1000));
          queued = false;
          return target.synchronize();
        };
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const engines: Engine[] = [];
afterAll(() => engines.forEach((e) => e.close()));

describe('training step time', () => {
  it('leaves out the batch\'s queued device work and reports it as the batch time', async () => {
    const engine = Engine.create();
    engines.push(engine);
    const events: TrainStepEvent[] = [];
    const r = await runTraining(queuedDevice(engine), trainJob('step-time', { workers: 1, steps: 3 }), { rank: 0, worldSize: 1, onStep: (e) => events.push(e) });
    expect(events).toHaveLength(3);
    for (const e of events) {
      // The teacher's forward queued attention calls: waiting them out belongs to the batch...
      expect(e.dataSeconds).toBeGreaterThanOrEqual(DEVICE_SECONDS * 0.9);
      // ...and the step still waits for its own.
      expect(e.seconds).toBeGreaterThanOrEqual(DEVICE_SECONDS * 0.9);
    }
    expect(r.dataSecondsPerStep).toBeCloseTo(events.reduce((a, e) => a + e.dataSeconds, 0) / 3, 9);
  });
});
