// A worker's metrics: the registry always (the loop records into it), the HTTP server only when
// XATTN_METRICS_PORT is set (0 = off). Also maps benchmark steps onto the same series.
import type { XAttnJob } from '../../crds/types.js';
import { attentionFlops, shardOf } from '../engine/engine.js';
import { resolveModel } from '../model/presets.js';
import type { StepEvent } from '../worker/attention-bench.js';
import { startMetricsServer, type MetricsServer } from './server.js';
import { WorkerMetrics, type StepSample, type WorkerIdentity } from './worker-metrics.js';

export interface WorkerTelemetry {
  metrics: WorkerMetrics;
  server?: MetricsServer;
  close(): Promise<void>;
}

export async function startWorkerTelemetry(id: WorkerIdentity, port: number): Promise<WorkerTelemetry> {
  const metrics = new WorkerMetrics(id);
  const server = port > 0 ? await startMetricsServer(metrics.registry, port) : undefined;
  return { metrics, server, close: async () => server?.close() };
}

/** A benchmark step (distributed attention forward + backward only) as a metrics sample. */
export function benchmarkSample(job: XAttnJob, rank: number, worldSize: number, e: StepEvent): StepSample {
  const m = resolveModel(job.spec.model);
  const w = job.spec.workload;
  const flops = (3.5 * attentionFlops({ batch: w.batch, heads: m.heads, headDim: m.headDim }, w.textTokens, w.visualTokens)) / worldSize;
  return {
    seconds: e.seconds,
    textTokens: w.batch * shardOf(w.textTokens, worldSize, rank).length,
    visualTokens: w.batch * shardOf(w.visualTokens, worldSize, rank).length,
    attentionFlops: flops,
    modelFlops: flops,
    attentionSeconds: Math.max(0, e.seconds - e.commWaitSeconds),
    comm: { attention: { bytes: e.bytesSent, seconds: e.commWaitSeconds } },
  };
}
