// What the xattn dashboard shows: rows of panels, each a title, a one-paragraph meaning (shown as
// the panel's description in Grafana and walked through in the README) and its PromQL.
import { BY_JOB, CONTROLLER_SELECTOR, increase, legend, meanOver, quantile, rate, series, sumBy } from './promql.js';
import { OPERATOR, WORKER } from './sources.js';

export interface TargetSpec {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  description: string;
  kind: 'timeseries' | 'stat';
  /** Grafana unit id. */
  unit: string;
  /** Columns out of 24. */
  width: 6 | 8 | 12 | 24;
  targets: TargetSpec[];
  /** Stack the series (shares that add up to a whole). */
  stacked?: boolean;
  /** Draw bars (counts per interval). */
  bars?: boolean;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const NS_ONLY = 'namespace=~"$namespace"';
const BY_RANK = `${BY_JOB}, rank`;

const overview: RowSpec = {
  title: 'Overview',
  panels: [
    {
      title: 'Ranks reporting',
      description: 'Worker ranks of each job that Prometheus scrapes right now (xattn_rank_info). Fewer than the world size means a rank is down, still starting, or not scraped.',
      kind: 'stat', unit: 'none', width: 8,
      targets: [{ expr: `count by (${BY_JOB}) (${series(WORKER.rankInfo)})`, legend: legend() }],
    },
    {
      title: 'Seconds since last step',
      description: 'Time since the slowest rank of each job finished a step. It climbs without bound when the job hangs (a dead peer, a stuck collective); a healthy job stays below a few step times.',
      kind: 'stat', unit: 's', width: 8,
      targets: [{ expr: `time() - min by (${BY_JOB}) (${series(WORKER.lastStepTimestampSeconds)})`, legend: legend() }],
    },
    {
      title: 'Jobs by phase',
      description: 'XAttnJobs the operator sees, by status.phase, across every namespace it watches (xattnjob_jobs, counted from its cache at scrape time).',
      kind: 'stat', unit: 'none', width: 8,
      targets: [{ expr: `max by (phase) (${OPERATOR.jobsByPhase})`, legend: '{{phase}}' }],
    },
  ],
};

const throughput: RowSpec = {
  title: 'Throughput',
  panels: [
    {
      title: 'Text tokens/s',
      description: 'Text (query) tokens processed per second, summed over the ranks of each job.',
      kind: 'timeseries', unit: 'short', width: 8,
      targets: [{ expr: sumBy(BY_JOB, rate(WORKER.textTokensTotal)), legend: legend('text') }],
    },
    {
      title: 'Visual tokens/s',
      description: 'Visual (key/value) tokens processed per second, summed over the ranks of each job: the long-context throughput LV-XAttn exists for. Each rank holds its shard of the visual tokens.',
      kind: 'timeseries', unit: 'short', width: 8,
      targets: [{ expr: sumBy(BY_JOB, rate(WORKER.visualTokensTotal)), legend: legend('visual') }],
    },
    {
      title: 'TFLOP/s per rank',
      description: 'Last step of each rank: attention TFLOP/s over the time its attention kernels ran, and model TFLOP/s (projections + attention, forward + backward) over the whole step. A rank far below the others is a straggler.',
      kind: 'timeseries', unit: 'none', width: 8,
      targets: [
        { expr: `max by (${BY_RANK}) (${series(WORKER.attentionTflops)})`, legend: legend('rank {{rank}} attention') },
        { expr: `max by (${BY_RANK}) (${series(WORKER.modelTflops)})`, legend: legend('rank {{rank}} model') },
      ],
    },
  ],
};

const stepTime: RowSpec = {
  title: 'Step time',
  panels: [
    {
      title: 'Step time p50 / p95, batch p50',
      description:
        'Median and 95th percentile of step wall time over all ranks of each job. A p95 far above the p50 means some steps stall (checkpoints, a slow peer, the network). ' +
        'Batch: the median time preparing a training step\'s batch (a data read, or the synthetic targets\' teacher forward), which the step time leaves out; near the step time, the data path is what to speed up.',
      kind: 'timeseries', unit: 's', width: 8,
      targets: [
        { expr: quantile(0.5, WORKER.stepDurationSeconds, BY_JOB), legend: legend('p50') },
        { expr: quantile(0.95, WORKER.stepDurationSeconds, BY_JOB), legend: legend('p95') },
        { expr: quantile(0.5, WORKER.batchDurationSeconds, BY_JOB), legend: legend('batch p50') },
      ],
    },
    {
      title: 'Step time per rank',
      description: 'Mean step time of each rank. Ranks of a ring move in lockstep, so one rank above the rest is the straggler the others wait for.',
      kind: 'timeseries', unit: 's', width: 8,
      targets: [{ expr: meanOver(WORKER.stepDurationSeconds, BY_RANK), legend: legend('rank {{rank}}') }],
    },
    {
      title: 'Steps/s',
      description: 'Steps each job completes per second (the slowest rank sets it: every rank runs the same steps).',
      kind: 'timeseries', unit: 'none', width: 8,
      targets: [{ expr: `min by (${BY_JOB}) (${rate(WORKER.stepsTotal)})`, legend: legend() }],
    },
  ],
};

const communication: RowSpec = {
  title: 'Communication vs compute',
  panels: [
    {
      title: 'Share of step time: communication wait vs compute',
      description: 'Fraction of the step time the ranks spent waiting on communication, per op (attention: the ring of Q/O/LSE blocks, or K/V for Ring Attention; all_reduce: gradients), and the rest (compute). While overlap holds, transfers hide behind the attention kernels and the wait share stays near zero; a growing wait share means the network, not compute, sets the pace.',
      kind: 'timeseries', unit: 'percentunit', width: 8, stacked: true,
      targets: [
        {
          expr: `${sumBy(`${BY_JOB}, op`, rate(WORKER.commSecondsTotal))} / on (${BY_JOB}) group_left ${sumBy(BY_JOB, rate(`${WORKER.stepDurationSeconds}_sum`))}`,
          legend: legend('wait: {{op}}'),
        },
        {
          expr: `clamp_min(1 - ${sumBy(BY_JOB, rate(WORKER.commSecondsTotal))} / ${sumBy(BY_JOB, rate(`${WORKER.stepDurationSeconds}_sum`))}, 0)`,
          legend: legend('compute'),
        },
      ],
    },
    {
      title: 'Bytes sent/s per op',
      description: 'Bytes the ranks of each job send per second, by op. LV-XAttn moves the small text blocks (Q, O, LSE) instead of the large visual K/V blocks Ring Attention moves, so at long visual inputs its attention traffic is far lower.',
      kind: 'timeseries', unit: 'Bps', width: 8,
      targets: [{ expr: sumBy(`${BY_JOB}, op`, rate(WORKER.commBytesTotal)), legend: legend('{{op}}') }],
    },
    {
      title: 'Link between ranks',
      description: "Each job's ring-exchange bandwidth, probed once when its ranks first exchange data (the slowest rank's view). NVLink shows hundreds of GB/s; a job whose NCCL fell back to host memory or sockets shows about 20 or 2 GB/s. LV-XAttn pipelines its transfers by it. Single-rank jobs report nothing.",
      kind: 'timeseries', unit: 'Bps', width: 8,
      targets: [{ expr: `min by (${BY_JOB}) (${series(WORKER.linkBytesPerSecond)} > 0)`, legend: legend() }],
    },
  ],
};

const training: RowSpec = {
  title: 'Training',
  panels: [
    {
      title: 'Loss',
      description: 'Training loss of the last step (the global mean over ranks; every rank reports the same value). Benchmark-mode jobs report none.',
      kind: 'timeseries', unit: 'none', width: 8,
      targets: [{ expr: `avg by (${BY_JOB}) (${series(WORKER.loss)})`, legend: legend() }],
    },
    {
      title: 'Learning rate',
      description: 'Learning rate of the last step: warmup, then the schedule.',
      kind: 'timeseries', unit: 'none', width: 8,
      targets: [{ expr: `max by (${BY_JOB}) (${series(WORKER.learningRate)})`, legend: legend() }],
    },
    {
      title: 'Memory per rank',
      description: 'Memory in use by each rank: device memory on GPU, resident set size on CPU. Recomputing the visual K/V in the backward (attention.recomputeKV) lowers it.',
      kind: 'timeseries', unit: 'bytes', width: 8,
      targets: [{ expr: `max by (${BY_RANK}) (${series(WORKER.memoryBytes)})`, legend: legend('rank {{rank}}') }],
    },
    {
      title: 'Last checkpoint step',
      description: 'Step of the newest checkpoint written (or resumed from). A restarted gang resumes here, so the distance to the current step is the work a failure would cost.',
      kind: 'timeseries', unit: 'none', width: 12,
      targets: [{ expr: `max by (${BY_JOB}) (${series(WORKER.lastCheckpointStep)})`, legend: legend() }],
    },
    {
      title: 'Checkpoint write time',
      description: 'Mean wall time of one checkpoint write since the job started (rank 0 writes). Steps stall while it runs, which shows in the step time p95.',
      kind: 'timeseries', unit: 's', width: 12,
      targets: [
        {
          expr: `max by (${BY_JOB}) (${series(`${WORKER.checkpointDurationSeconds}_sum`)} / ${series(`${WORKER.checkpointDurationSeconds}_count`)})`,
          legend: legend(),
        },
      ],
    },
  ],
};

const operator: RowSpec = {
  title: 'Operator',
  panels: [
    {
      title: 'Job outcomes and gang restarts',
      description: 'Per namespace and rate interval: jobs the operator started handling, jobs that succeeded or failed, and whole-gang restarts (a failed worker restarts every worker, resuming from the last checkpoint).',
      kind: 'timeseries', unit: 'none', width: 12, bars: true,
      targets: [
        { expr: sumBy('namespace', increase(OPERATOR.jobsCreatedTotal, NS_ONLY)), legend: '{{namespace}} created' },
        { expr: sumBy('namespace', increase(OPERATOR.jobsSucceededTotal, NS_ONLY)), legend: '{{namespace}} succeeded' },
        { expr: sumBy('namespace', increase(OPERATOR.jobsFailedTotal, NS_ONLY)), legend: '{{namespace}} failed' },
        { expr: sumBy('namespace', increase(OPERATOR.jobsRestartedTotal, NS_ONLY)), legend: '{{namespace}} gang restarts' },
      ],
    },
    {
      title: 'Reconciles/s by result',
      description: 'Reconciles of the XAttnJob controller per second: success, error, requeue (conflict or waiting on the cache) and requeue_after (deadlines, TTLs).',
      kind: 'timeseries', unit: 'reqps', width: 12, stacked: true,
      targets: [{ expr: sumBy('result', rate(OPERATOR.reconcileTotal, CONTROLLER_SELECTOR)), legend: '{{result}}' }],
    },
    {
      title: 'Reconcile errors/s',
      description: 'Reconciles that failed (API errors, rejected pods); they are retried with backoff. A steady rate means jobs are stuck: see `kubectl describe xattnjob` and the operator log.',
      kind: 'timeseries', unit: 'reqps', width: 8,
      targets: [{ expr: `sum(${rate(OPERATOR.reconcileErrorsTotal, CONTROLLER_SELECTOR)})`, legend: 'errors' }],
    },
    {
      title: 'Reconcile time p50 / p95',
      description: 'How long one reconcile of one job takes (read, plan, write).',
      kind: 'timeseries', unit: 's', width: 8,
      targets: [
        { expr: quantile(0.5, OPERATOR.reconcileTimeSeconds, 'controller', CONTROLLER_SELECTOR), legend: 'p50' },
        { expr: quantile(0.95, OPERATOR.reconcileTimeSeconds, 'controller', CONTROLLER_SELECTOR), legend: 'p95' },
      ],
    },
    {
      title: 'Work queue depth',
      description: 'Jobs waiting to be reconciled. It should drain to zero between bursts of changes; growth means the operator cannot keep up (raise operator.concurrency).',
      kind: 'timeseries', unit: 'none', width: 8,
      targets: [{ expr: `max(${series(OPERATOR.workqueueDepth, CONTROLLER_SELECTOR)})`, legend: 'depth' }],
    },
  ],
};

export const ROWS: RowSpec[] = [overview, throughput, stepTime, communication, training, operator];
