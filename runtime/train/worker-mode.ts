// The worker's train mode: runTraining wired to the worker's events, metrics and stop signals.
import type { XAttnJob } from '../../crds/types.js';
import type { Engine } from '../engine/engine.js';
import { XattnError } from '../errors.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { RankResult } from '../worker/attention-bench.js';
import type { Emit } from '../worker/events.js';
import { runTraining } from './run-training.js';
import { watchStopSignals } from './stop-signal.js';

export interface TrainModeResult extends RankResult {
  finalLoss: number;
}

export async function runTrainMode(
  engine: Engine,
  job: XAttnJob,
  o: { rank: number; worldSize: number; checkpointDir?: string; emit: Emit; metrics?: WorkerMetrics },
): Promise<TrainModeResult> {
  const stop = watchStopSignals();
  try {
    const r = await runTraining(engine, job, {
      rank: o.rank,
      worldSize: o.worldSize,
      checkpointDir: o.checkpointDir,
      metrics: o.metrics,
      stopRequested: stop.requested,
      onStep: (e) => o.emit({ type: 'step', rank: o.rank, step: e.step, steps: e.steps, seconds: e.seconds, bytesSent: e.bytesSent, loss: e.loss }),
    });
    if (r.stopped)
      throw new XattnError(
        'XATTN_E_INTERRUPTED',
        `stopped by ${stop.signal() ?? 'a peer'} after step ${r.lastStep} of ${job.spec.workload.steps}${o.checkpointDir ? ` (checkpoint in ${o.checkpointDir})` : ''}`,
      );
    const { rank, timedSteps, meanStepSeconds, medianStepSeconds, bytesSentPerStep, commWaitSecondsPerStep, medianBatchSeconds, attentionSecondsPerStep, finalLoss, partials, gathered, checkpoints } = r;
    return {
      ...{ rank, timedSteps, meanStepSeconds, medianStepSeconds, bytesSentPerStep, commWaitSecondsPerStep, medianBatchSeconds, finalLoss },
      ...(attentionSecondsPerStep !== undefined ? { attentionSecondsPerStep } : {}),
      ...(partials ? { partials } : {}),
      ...(gathered ? { gathered } : {}),
      ...(checkpoints ? { checkpoints } : {}),
    };
  } finally {
    stop.dispose();
  }
}
