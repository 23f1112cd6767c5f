// observed (job + its pods + now) -> desired status and the actions that get there. Pure: the
// reconciler writes the status first, then acts, so a crash between the two repeats the actions
// instead of losing a restart.
import { worldSize, type Condition, type Phase, type XAttnJob, type XAttnJobStatus } from '../../crds/types.js';
import { setCondition, setIfPresent, type ConditionUpdate } from './conditions.js';
import { describeFailure, failureAction } from './failure-policy.js';
import { countPods, isFinished, type PodView } from './pods.js';

export interface PlanInput {
  job: XAttnJob;
  /** Pods labelled with the job's name, whatever attempt or owner. */
  pods: PodView[];
  now: Date;
  /** Message of the last failed create for this job, shown in the Created condition. */
  createError?: string;
}

export interface PodRef {
  name: string;
  uid: string;
}
export interface JobEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
export type Transition = 'created' | 'restarted' | 'succeeded' | 'failed' | 'suspended' | 'resumed';

export interface Plan {
  status: XAttnJobStatus;
  /** Attempt label of pods created by this plan (status.restarts). */
  attempt: number;
  createPods: number[];
  deletePods: PodRef[];
  /** Service, ConfigMap, Secret (and PodGroup unless deletePodGroup) must exist. */
  ensureInfra: boolean;
  deletePodGroup: boolean;
  deleteJob: boolean;
  requeueAfterMs?: number;
  events: JobEvent[];
  transitions: Transition[];
}

const ref = (p: PodView): PodRef => ({ name: p.name, uid: p.uid });
const live = (p: PodView): boolean => !p.terminating;

/** Splits pods into the current attempt's workers (by index) and everything that must go. */
function partition(job: XAttnJob, pods: PodView[], attempt: number) {
  const current = new Map<number, PodView>();
  const stale: PodView[] = [];
  for (const p of pods) {
    const mine = p.ownerUid === job.metadata.uid && p.attempt === attempt && p.index >= 0 && p.index < job.spec.workers;
    if (mine && !current.has(p.index)) current.set(p.index, p);
    else stale.push(p);
  }
  return { current, stale };
}

function withCounts(status: XAttnJobStatus, pods: PodView[], workers: number): XAttnJobStatus {
  const c = countPods(pods);
  return {
    ...status,
    workersTotal: workers,
    workersReady: c.ready,
    workersRunning: c.running,
    workersSucceeded: c.succeeded,
    workersFailed: c.failed,
    workersReadyText: `${c.ready}/${workers}`,
  };
}

class Planner {
  readonly plan: Plan;
  readonly nowIso: string;
  conditions: Condition[] | undefined;

  constructor(
    readonly job: XAttnJob,
    readonly input: PlanInput,
  ) {
    this.nowIso = input.now.toISOString();
    const prev = job.status ?? {};
    this.conditions = prev.conditions;
    this.plan = {
      status: { ...prev, observedGeneration: job.metadata.generation, worldSize: worldSize(job.spec), restarts: prev.restarts ?? 0 },
      attempt: prev.restarts ?? 0,
      createPods: [],
      deletePods: [],
      ensureInfra: false,
      deletePodGroup: false,
      deleteJob: false,
      events: [],
      transitions: [],
    };
  }

  cond(u: ConditionUpdate, onlyIfPresent = false): void {
    const gen = this.job.metadata.generation;
    this.conditions = onlyIfPresent ? setIfPresent(this.conditions, u, this.nowIso, gen) : setCondition(this.conditions, u, this.nowIso, gen);
  }

  phase(phase: Phase, reason: string, message: string): void {
    Object.assign(this.plan.status, { phase, reason, message });
  }

  event(type: JobEvent['type'], reason: string, message: string): void {
    this.plan.events.push({ type, reason, message });
  }

  requeueAt(atMs: number): void {
    const after = Math.max(0, atMs - this.input.now.getTime());
    this.plan.requeueAfterMs = Math.min(this.plan.requeueAfterMs ?? Infinity, after);
  }

  delete(pods: PodView[]): void {
    const seen = new Set(this.plan.deletePods.map((p) => p.uid));
    for (const p of pods) if (live(p) && !seen.has(p.uid)) this.plan.deletePods.push(ref(p));
  }

  /** cleanPodPolicy, applied once the job has finished. */
  cleanUp(pods: PodView[]): void {
    const policy = this.job.spec.runPolicy.cleanPodPolicy;
    if (policy === 'All') this.delete(pods);
    if (policy === 'Running') this.delete(pods.filter((p) => !isFinished(p)));
  }

  ttl(): void {
    const ttl = this.job.spec.runPolicy.ttlSecondsAfterFinished;
    const done = this.plan.status.completionTime;
    if (ttl === undefined || !done) return;
    const due = Date.parse(done) + ttl * 1000;
    if (this.input.now.getTime() >= due) this.plan.deleteJob = true;
    else this.requeueAt(due);
  }

  finish(outcome: 'Succeeded' | 'Failed', reason: string, message: string, pods: PodView[]): void {
    this.phase(outcome, reason, message);
    this.plan.status.completionTime = this.nowIso;
    this.cond({ type: outcome, status: 'True', reason, message });
    this.cond({ type: 'Running', status: 'False', reason: 'JobFinished', message: `the job ${outcome.toLowerCase()}` }, true);
    this.cond({ type: 'Restarting', status: 'False', reason: 'JobFinished', message: `the job ${outcome.toLowerCase()}` }, true);
    this.event(outcome === 'Failed' ? 'Warning' : 'Normal', reason, message);
    this.plan.transitions.push(outcome === 'Failed' ? 'failed' : 'succeeded');
    // A deadline stops every rank; otherwise cleanPodPolicy decides.
    if (reason === 'DeadlineExceeded') this.delete(pods.filter((p) => !isFinished(p)));
    this.cleanUp(pods);
    this.ttl();
  }

  done(): Plan {
    if (this.conditions) this.plan.status.conditions = this.conditions;
    return this.plan;
  }
}

export function planReconcile(input: PlanInput): Plan {
  const { job } = input;
  const pl = new Planner(job, input);
  const { current, stale } = partition(job, input.pods, pl.plan.attempt);
  const workers = job.spec.workers;
  pl.plan.status = withCounts(pl.plan.status, [...current.values()], workers);
  const prevPhase = job.status?.phase;

  if (prevPhase === 'Succeeded' || prevPhase === 'Failed') {
    pl.cleanUp(input.pods);
    pl.ttl();
    return pl.done();
  }
  pl.plan.ensureInfra = true;
  if (!prevPhase) pl.plan.transitions.push('created');
  if (job.spec.runPolicy.suspend) {
    suspend(pl, input.pods);
    return pl.done();
  }
  if (!prevPhase) {
    pl.event('Normal', 'Accepted', `creating ${workers} worker pods (world size ${worldSize(job.spec)})`);
  }
  if (prevPhase === 'Suspended' || job.status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True')) {
    pl.cond({ type: 'Suspended', status: 'False', reason: 'Resumed', message: 'spec.runPolicy.suspend is false' });
    pl.event('Normal', 'Resumed', 'recreating the worker pods from the current spec');
    pl.plan.transitions.push('resumed');
  }
  const startTime = (pl.plan.status.startTime ??= pl.nowIso);

  const ads = job.spec.runPolicy.activeDeadlineSeconds;
  if (ads !== undefined) {
    const deadline = Date.parse(startTime) + ads * 1000;
    if (input.now.getTime() >= deadline) {
      pl.finish('Failed', 'DeadlineExceeded', `the job ran longer than activeDeadlineSeconds (${ads}s)`, input.pods);
      return pl.done();
    }
    pl.requeueAt(deadline);
  }

  pl.delete(stale);
  if (handleFailures(pl, current, stale.length > 0, prevPhase)) return pl.done();

  const workersNow = [...current.values()];
  if (workersNow.length === workers && workersNow.every((p) => p.phase === 'Succeeded')) {
    pl.finish('Succeeded', 'AllWorkersSucceeded', `all ${workers} workers exited 0`, input.pods);
    return pl.done();
  }
  if (stale.length === 0) {
    for (let i = 0; i < workers; i++) if (!current.has(i)) pl.plan.createPods.push(i);
  }
  progress(pl, workersNow, input.createError);
  return pl.done();
}

function suspend(pl: Planner, pods: PodView[]): void {
  const msg = 'spec.runPolicy.suspend is true: worker pods deleted, Service kept';
  if (pl.job.status?.phase !== 'Suspended') {
    pl.event('Normal', 'Suspended', msg);
    pl.plan.transitions.push('suspended');
  }
  pl.phase('Suspended', 'Suspended', msg);
  pl.cond({ type: 'Suspended', status: 'True', reason: 'Suspended', message: msg });
  pl.cond({ type: 'Running', status: 'False', reason: 'Suspended', message: msg }, true);
  pl.cond({ type: 'Restarting', status: 'False', reason: 'Suspended', message: msg }, true);
  // activeDeadlineSeconds counts from the resume, as for a batch/v1 Job.
  delete pl.plan.status.startTime;
  pl.plan.deletePodGroup = true;
  pl.delete(pods);
}

/** Failed, lost or (once running) missing workers: restart the gang or fail the job. True when handled. */
function handleFailures(pl: Planner, current: Map<number, PodView>, staleLeft: boolean, prevPhase?: Phase): boolean {
  const { job } = pl;
  const failed = [...current.values()].filter((p) => p.phase === 'Failed' || (p.terminating && !isFinished(p)));
  if (prevPhase === 'Running' && !staleLeft) {
    for (let i = 0; i < job.spec.workers; i++)
      if (!current.has(i)) failed.push({ name: `${job.metadata.name}-worker-${i}`, uid: '', index: i, attempt: pl.plan.attempt, phase: 'Unknown', ready: false, terminating: false });
  }
  if (failed.length === 0) return false;
  failed.sort((a, b) => a.index - b.index);
  const all = [...current.values()];
  const permanent = failed.find((p) => failureAction(job.spec.failurePolicy.rules, p.exitCode) === 'FailJob');
  if (permanent) {
    pl.finish('Failed', 'PodFailurePolicy', `${describeFailure(permanent)}, which failurePolicy marks FailJob`, all);
    return true;
  }
  const what = describeFailure(failed[0]!);
  const limit = job.spec.runPolicy.backoffLimit;
  const attempt = pl.plan.attempt;
  if (attempt >= limit) {
    pl.finish('Failed', 'BackoffLimitExceeded', `${what}; the gang already restarted ${attempt} times (backoffLimit ${limit})`, all);
    return true;
  }
  // Bump the attempt first: the current pods become stale and are replaced as a whole gang.
  pl.plan.attempt = attempt + 1;
  pl.plan.status = withCounts({ ...pl.plan.status, restarts: attempt + 1 }, [], job.spec.workers);
  const msg = `${what}; restarting all ${job.spec.workers} workers (restart ${attempt + 1} of ${limit})`;
  pl.phase('Restarting', 'WorkerFailed', msg);
  pl.cond({ type: 'Restarting', status: 'True', reason: 'WorkerFailed', message: msg });
  pl.cond({ type: 'Running', status: 'False', reason: 'Restarting', message: msg }, true);
  pl.event('Warning', 'Restarting', msg);
  pl.plan.transitions.push('restarted');
  pl.delete(all);
  return true;
}

/** Phase and conditions of a job that is neither finished nor failing. */
function progress(pl: Planner, pods: PodView[], createError?: string): void {
  const workers = pl.job.spec.workers;
  const allExist = pods.length === workers;
  const active = pods.filter((p) => p.phase === 'Running' || p.phase === 'Succeeded').length;
  if (allExist) pl.cond({ type: 'Created', status: 'True', reason: 'WorkersCreated', message: `all ${workers} worker pods exist` });
  else if (createError) pl.cond({ type: 'Created', status: 'False', reason: 'CreateFailed', message: createError });
  else if (!pl.conditions?.some((c) => c.type === 'Created' && c.status === 'True'))
    pl.cond({ type: 'Created', status: 'False', reason: 'CreatingWorkers', message: `${pods.length} of ${workers} worker pods exist` });

  if (allExist && active === workers) {
    pl.phase('Running', 'AllWorkersRunning', `all ${workers} workers are running`);
    pl.cond({ type: 'Running', status: 'True', reason: 'AllWorkersRunning', message: `all ${workers} workers are running` });
    pl.cond({ type: 'Restarting', status: 'False', reason: 'GangRunning', message: 'the restarted gang is running' }, true);
    return;
  }
  const waiting = `${active} of ${workers} workers running`;
  if (pl.plan.attempt > 0) {
    const prev = pl.job.status;
    if (prev?.phase === 'Restarting') pl.phase('Restarting', prev.reason ?? 'WorkerFailed', prev.message ?? waiting);
    else pl.phase('Restarting', 'RecreatingWorkers', waiting);
  } else if (createError && !allExist) pl.phase('Pending', 'CreateFailed', createError);
  else if (allExist) pl.phase('Created', 'WorkersCreated', waiting);
  else pl.phase('Pending', 'CreatingWorkers', `${pods.length} of ${workers} worker pods exist`);
  pl.cond({ type: 'Running', status: 'False', reason: pl.plan.attempt > 0 ? 'Restarting' : 'WorkersNotRunning', message: waiting }, true);
}
