// The worker's Prometheus registry (its own, not prom-client's global one) and the few calls the
// training loop and the attention benchmark make to update it.
import client from 'prom-client';
import { COMM_OPS, METRIC, type CommOpLabel } from './names.js';

export interface WorkerIdentity {
  rank: number;
  worldSize: number;
  backend: string;
  algorithm: string;
}

export interface StepSample {
  seconds: number;
  /** Training: preparing the step's batch (data read or synthetic targets), which `seconds` leaves out. */
  batchSeconds?: number;
  textTokens: number;
  visualTokens: number;
  /** FLOPs of this rank's step: attention (forward + backward) and the whole model. */
  attentionFlops: number;
  modelFlops: number;
  /** Seconds the attention kernels ran (for attention TFLOP/s); defaults to the step time. */
  attentionSeconds?: number;
  comm: Partial<Record<CommOpLabel, { bytes: number; seconds: number }>>;
  loss?: number;
  learningRate?: number;
}

export class WorkerMetrics {
  readonly registry = new client.Registry();
  private steps: client.Counter;
  private stepSeconds: client.Histogram;
  private batchSeconds: client.Histogram;
  private textTokens: client.Counter;
  private visualTokens: client.Counter;
  private attnTflops: client.Gauge;
  private modelTflops: client.Gauge;
  private commBytes: client.Counter<'op'>;
  private commSeconds: client.Counter<'op'>;
  private loss: client.Gauge;
  private lr: client.Gauge;
  private ckptSeconds: client.Histogram;
  private lastCkpt: client.Gauge;
  private lastStep: client.Gauge;
  private link: client.Gauge;
  private linkRecorded: boolean;

  /** memoryBytes: the engine's memory in use (device memory on GPU); RSS when not given. */
  constructor(id: WorkerIdentity, memoryBytes: () => number = () => process.memoryUsage.rss()) {
    const r = [this.registry];
    this.linkRecorded = id.worldSize < 2; // one rank has no link
    this.registry.setDefaultLabels({ rank: String(id.rank), algorithm: id.algorithm });
    client.collectDefaultMetrics({ register: this.registry });
    this.steps = new client.Counter({ name: METRIC.stepsTotal, help: 'Training (or benchmark) steps completed.', registers: r });
    this.stepSeconds = new client.Histogram({
      name: METRIC.stepDurationSeconds,
      help: 'Wall time of one step.',
      buckets: client.exponentialBuckets(0.001, 2, 17), // 1 ms .. ~65 s
      registers: r,
    });
    this.batchSeconds = new client.Histogram({
      name: METRIC.batchDurationSeconds,
      help: "Wall time preparing one training step's batch (a data read, or the synthetic targets' teacher forward), outside the step's time.",
      buckets: client.exponentialBuckets(0.0005, 2, 17), // 0.5 ms .. ~33 s
      registers: r,
    });
    this.textTokens = new client.Counter({ name: METRIC.textTokensTotal, help: 'Text tokens processed by this rank.', registers: r });
    this.visualTokens = new client.Counter({ name: METRIC.visualTokensTotal, help: 'Visual tokens processed by this rank.', registers: r });
    this.attnTflops = new client.Gauge({ name: METRIC.attentionTflops, help: 'Attention TFLOP/s of this rank over the time its kernels ran, last step.', registers: r });
    this.modelTflops = new client.Gauge({ name: METRIC.modelTflops, help: 'Model (projections + attention, forward + backward) TFLOP/s of this rank over the whole last step.', registers: r });
    this.commBytes = new client.Counter({ name: METRIC.commBytesTotal, help: 'Bytes this rank sent, per communication op.', labelNames: ['op'], registers: r });
    this.commSeconds = new client.Counter({ name: METRIC.commSecondsTotal, help: 'Seconds this rank waited on communication, per op.', labelNames: ['op'], registers: r });
    for (const op of COMM_OPS) this.commBytes.inc({ op }, 0), this.commSeconds.inc({ op }, 0);
    this.loss = new client.Gauge({ name: METRIC.loss, help: 'Training loss of the last step (global mean).', registers: r });
    this.lr = new client.Gauge({ name: METRIC.learningRate, help: 'Learning rate of the last step.', registers: r });
    new client.Gauge({
      name: METRIC.memoryBytes,
      help: 'Memory in use by this rank: device memory on GPU, resident set size on CPU.',
      registers: r,
      collect() {
        this.set(memoryBytes());
      },
    });
    this.ckptSeconds = new client.Histogram({
      name: METRIC.checkpointDurationSeconds,
      help: 'Wall time of one checkpoint write.',
      buckets: client.exponentialBuckets(0.01, 2, 15), // 10 ms .. ~3 min
      registers: r,
    });
    this.lastCkpt = new client.Gauge({ name: METRIC.lastCheckpointStep, help: 'Step of the newest checkpoint written or resumed from.', registers: r });
    this.lastStep = new client.Gauge({ name: METRIC.lastStepTimestampSeconds, help: 'Unix time the last step finished (stall alerts).', registers: r });
    this.link = new client.Gauge({
      name: METRIC.linkBytesPerSecond,
      help: "The ranks' ring-exchange bandwidth, probed at the first exchange (0: one rank, or not probed yet).",
      registers: r,
    });
    const info = new client.Gauge({ name: METRIC.rankInfo, help: 'Constant 1, labelled with the job layout.', labelNames: ['world_size', 'backend'], registers: r });
    info.set({ world_size: String(id.worldSize), backend: id.backend }, 1);
  }

  recordStep(s: StepSample): void {
    this.steps.inc();
    this.stepSeconds.observe(s.seconds);
    if (s.batchSeconds !== undefined) this.batchSeconds.observe(s.batchSeconds);
    this.textTokens.inc(s.textTokens);
    this.visualTokens.inc(s.visualTokens);
    const attnSeconds = s.attentionSeconds && s.attentionSeconds > 0 ? s.attentionSeconds : s.seconds;
    if (attnSeconds > 0) this.attnTflops.set(s.attentionFlops / attnSeconds / 1e12);
    if (s.seconds > 0) this.modelTflops.set(s.modelFlops / s.seconds / 1e12);
    for (const op of COMM_OPS) {
      const c = s.comm[op];
      if (!c) continue;
      this.commBytes.inc({ op }, c.bytes);
      this.commSeconds.inc({ op }, c.seconds);
    }
    if (s.loss !== undefined && Number.isFinite(s.loss)) this.loss.set(s.loss);
    if (s.learningRate !== undefined) this.lr.set(s.learningRate);
    this.lastStep.set(Date.now() / 1000);
  }

  /** The engine's probed link in GB/s (engine.info().linkGbps, 0 until probed). Called after each step,
   * it asks `probe` only until a link is known: the probe runs once per job and never changes. */
  recordLink(probe: () => number): void {
    if (this.linkRecorded) return;
    const gbps = probe();
    if (gbps > 0) this.link.set(gbps * 1e9), (this.linkRecorded = true);
  }

  recordCheckpoint(seconds: number, step: number): void {
    if (seconds > 0) this.ckptSeconds.observe(seconds);
    this.lastCkpt.set(step);
  }
}
