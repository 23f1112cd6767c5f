// The end-of-run summary (pure): throughput, per-worker attention TFLOP/s and bytes moved per step.
import type { XAttnJob } from '../../crds/types.js';
import { attentionFlops, type PassGathered, type PassPartials } from '../engine/engine.js';
import { resolveModel } from '../model/presets.js';
import type { CheckpointStats } from '../train/checkpointing.js';
import type { RankResult } from './attention-bench.js';

export interface RunSummary {
  job: string;
  algorithm: string;
  /** How LV-XAttn's partial results travelled, per pass, and whether the plan chose (attention.partials
   * auto); absent where nothing travelled (Ring, one worker). */
  partials?: PassPartials & { chosen: boolean };
  /** Where LV-XAttn gathered its blocks in some pass (from three ranks on): each rank's block went to every rank
   * at once, and each rank ran all it received in one launch. */
  gathered?: PassGathered;
  mode: string;
  worldSize: number;
  backend: string;
  steps: number;
  stepSeconds: number;
  /** The slowest rank's median step, where every rank reported one. */
  medianStepSeconds?: number;
  textTokensPerSecond: number;
  visualTokensPerSecond: number;
  /** Attention FLOPs (forward + backward) per worker over the time attention ran: the attention calls' own
   * time in training, the whole step in a benchmark (where the step is the attention). */
  attentionTflopsPerWorker: number;
  bytesSentPerStepPerWorker: number;
  commWaitFraction: number;
  /** Training: the slowest rank's median time preparing a step's batch, which the step time leaves out. */
  medianBatchSeconds?: number;
  /** The ranks' probed ring-exchange bandwidth, GB/s (absent at P = 1 or when nothing was sent). */
  linkGbps?: number;
  /** Training with a checkpoint directory: the checkpoints written and their cost (sums, seconds). */
  checkpoints?: CheckpointStats;
  /** How the ranks' transfers travel (engine.info().transportPath), shown beside the link. */
  linkPath?: string;
  loss?: number;
}

export function summarize(job: XAttnJob, backend: string, ranks: RankResult[], extra: { loss?: number; layers?: number; linkGbps?: number; linkPath?: string } = {}): RunSummary {
  const w = job.spec.workload;
  const m = resolveModel(job.spec.model);
  const P = ranks.length;
  // The ring couples every rank, so the slowest rank's mean is the job's step time.
  const step = Math.max(...ranks.map((r) => r.meanStepSeconds));
  const layers = extra.layers ?? 1;
  const flops = 3.5 * layers * attentionFlops({ batch: w.batch, heads: m.heads, headDim: m.headDim }, w.textTokens, w.visualTokens);
  const mean = (f: (r: RankResult) => number) => ranks.reduce((a, r) => a + f(r), 0) / P;
  const writer = ranks.find((r) => r.checkpoints); // rank 0, where a checkpoint directory is set
  return {
    job: job.metadata.name,
    algorithm: job.spec.attention.algorithm,
    // Every rank plans alike, so rank 0's choice is the job's.
    ...(job.spec.attention.algorithm === 'lv-xattn' && P > 1 && ranks[0]!.partials
      ? { partials: { ...ranks[0]!.partials, chosen: job.spec.attention.partials === 'auto' } }
      : {}),
    ...(job.spec.attention.algorithm === 'lv-xattn' && P > 1 && (ranks[0]!.gathered?.forward || ranks[0]!.gathered?.backward)
      ? { gathered: ranks[0]!.gathered }
      : {}),
    mode: w.mode,
    worldSize: P,
    backend,
    steps: Math.min(...ranks.map((r) => r.timedSteps)),
    stepSeconds: step,
    ...(ranks.every((r) => r.medianStepSeconds !== undefined) ? { medianStepSeconds: Math.max(...ranks.map((r) => r.medianStepSeconds!)) } : {}),
    textTokensPerSecond: (w.batch * w.textTokens) / step,
    visualTokensPerSecond: (w.batch * w.visualTokens) / step,
    // Over the time attention ran where the ranks timed it (training), else over the step (benchmark: all attention).
    attentionTflopsPerWorker: flops / P / (ranks.every((r) => r.attentionSecondsPerStep) ? Math.max(...ranks.map((r) => r.attentionSecondsPerStep!)) : step) / 1e12,
    bytesSentPerStepPerWorker: mean((r) => r.bytesSentPerStep),
    commWaitFraction: mean((r) => r.commWaitSecondsPerStep) / step,
    ...(ranks.every((r) => r.medianBatchSeconds !== undefined) ? { medianBatchSeconds: Math.max(...ranks.map((r) => r.medianBatchSeconds!)) } : {}),
    ...(extra.linkGbps ? { linkGbps: extra.linkGbps, ...(extra.linkPath ? { linkPath: extra.linkPath } : {}) } : {}),
    ...(extra.loss !== undefined ? { loss: extra.loss } : {}),
    ...(writer?.checkpoints ? { checkpoints: writer.checkpoints } : {}),
  };
}

const si = (x: number, unit: string) => {
  const p = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const;
  for (const [f, s] of p) if (Math.abs(x) >= f) return `${(x / f).toFixed(2)} ${s}${unit}`;
  return `${x.toFixed(2)} ${unit}`;
};

const wireOf = (p: PassPartials) => (p.forward === p.backward ? `${p.forward} in both passes` : `${p.forward} forward, ${p.backward} backward`);

const ms = (seconds: number) => `${(seconds * 1000).toFixed(2)} ms`;

const gatheredOf = (g: PassGathered) =>
  `${g.forward && g.backward ? 'gathered in both passes' : g.forward ? 'gathered forward, around the ring backward' : 'around the ring forward, gathered backward'}` +
  ' (each rank\'s block went to every rank at once, one launch for all it received)';

export function formatSummary(s: RunSummary): string {
  const rows: [string, string][] = [
    ['job', `${s.job} (${s.mode}, ${s.algorithm}, ${s.worldSize} worker${s.worldSize > 1 ? 's' : ''}, ${s.backend})`],
    [s.mode === 'train' ? 'steps run' : 'steps timed', String(s.steps)],
    ['step time', `${ms(s.stepSeconds)}${s.mode === 'train' && s.steps > 1 ? ' (mean after the first step)' : ''}${s.medianStepSeconds !== undefined ? `; median ${ms(s.medianStepSeconds)}` : ''}`],
    ['text tokens/s', si(s.textTokensPerSecond, 'tok/s')],
    ['visual tokens/s', si(s.visualTokensPerSecond, 'tok/s')],
    ['attention per worker', si(s.attentionTflopsPerWorker * 1e12, 'FLOP/s')],
    ['sent per step/worker', si(s.bytesSentPerStepPerWorker, 'B')],
    ['waiting on transfers', `${(s.commWaitFraction * 100).toFixed(1)} % of the step`],
  ];
  if (s.medianBatchSeconds !== undefined) rows.push(['batch per step', `median ${ms(s.medianBatchSeconds)} (reading the data or computing synthetic targets; not in the step time)`]);
  if (s.partials) rows.push(['partials on the wire', `${wireOf(s.partials)}${s.partials.chosen ? ' (chosen for the link: partials auto)' : ''}`]);
  if (s.gathered) rows.push(['text blocks', gatheredOf(s.gathered)]);
  if (s.linkGbps !== undefined) rows.push(['link between ranks', `${s.linkGbps.toFixed(s.linkGbps < 10 ? 2 : 1)} GB/s (probed ring exchange${s.linkPath ? `; ${s.linkPath}` : ''})`]);
  if (s.checkpoints?.saved) {
    const { saved, waitSeconds, copySeconds, writeSeconds } = s.checkpoints;
    const each = (x: number) => `${(x / saved).toFixed(2)} s`;
    // The pauses land in some step's time (every rank waits for rank 0), so the mean step shows them too;
    // a wait for the previous write says the checkpoints come faster than the disk takes them.
    const waited = waitSeconds > 0.005 * saved ? `${each(waitSeconds)} for the previous write and ` : '';
    rows.push(['checkpoints', `${saved} written; each paused training ${waited}${each(copySeconds)} to copy the state, and was written behind the steps in ${each(writeSeconds)}`]);
  }
  if (s.loss !== undefined) rows.push(['final loss', s.loss.toPrecision(5)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}
