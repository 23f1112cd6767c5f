// One reconcile of one job: read the job fresh, plan from it and the pod cache, write status
// (with the job's resourceVersion as precondition), then act. Writing status first means a crash
// between the two repeats the actions on the next pass rather than forgetting a restart.
import { randomBytes } from 'node:crypto';
import type { XAttnJob } from '../../crds/types.js';
import { buildTokenSecret } from '../build/config.js';
import { desiredInfra } from '../build/desired.js';
import { PODGROUP_API, usesPodGroup } from '../build/gang.js';
import { buildWorkerPod } from '../build/pod.js';
import type { KubeGateway } from '../kube/gateway.js';
import type { Logger } from '../log.js';
import type { OperatorMetrics } from '../metrics.js';
import { LABEL_JOB, podGroupName, serviceName, splitKey } from '../names.js';
import { planReconcile, type JobEvent, type Plan } from '../status/plan.js';
import { podView } from '../status/pods.js';
import type { Expectations } from './expectations.js';

export interface ReconcileOutcome {
  /** Run again after this long (deadlines, TTLs, pending expectations); 0 = at once. */
  requeueAfterMs?: number;
}

export interface ObjectLister {
  list(namespace?: string): any[];
  get(namespace: string, name: string): any | undefined;
}

export interface ReconcilerDeps {
  kube: KubeGateway;
  pods: ObjectLister;
  services: ObjectLister;
  expectations: Expectations;
  log: Logger;
  metrics?: OperatorMetrics;
  now?: () => Date;
  newToken?: () => string;
  /** Parallel pod creates/deletes per job. */
  writeConcurrency?: number;
}

const stable = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).filter(([, y]) => y !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

async function eachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const run = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item).catch((e) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  if (errors.length) throw errors[0];
}

export class Reconciler {
  private readonly infraDone = new Map<string, string>();
  private readonly createErrors = new Map<string, string>();
  private readonly now: () => Date;
  private readonly newToken: () => string;

  constructor(private readonly d: ReconcilerDeps) {
    this.now = d.now ?? (() => new Date());
    this.newToken = d.newToken ?? (() => randomBytes(32).toString('hex'));
  }

  async reconcile(key: string): Promise<ReconcileOutcome> {
    const { namespace, name } = splitKey(key);
    const job = await this.d.kube.getJob(namespace, name);
    if (!job) {
      this.forget(key);
      return {};
    }
    if (job.metadata.deletionTimestamp) return {};
    if (!this.d.expectations.satisfied(key)) return { requeueAfterMs: 1000 };

    const pods = this.d.pods
      .list(namespace)
      .filter((p) => p.metadata?.labels?.[LABEL_JOB] === name)
      .map(podView);
    const plan = planReconcile({ job, pods, now: this.now(), createError: this.createErrors.get(key) });

    if (stable(job.status ?? {}) !== stable(plan.status)) {
      const r = await this.d.kube.patchJobStatus(job, plan.status);
      if (r === 'conflict') return { requeueAfterMs: 0 };
      if (r === 'gone') return {};
      for (const t of plan.transitions) this.d.metrics?.jobTransitions[t].inc({ namespace });
      for (const ev of plan.events) await this.event(job, ev);
    }
    if (plan.deleteJob) {
      this.d.log.info('deleting finished job after ttlSecondsAfterFinished', { job: key });
      await this.d.kube.deleteJob(job);
      return {};
    }
    await this.deletePods(key, job, plan);
    if (plan.deletePodGroup && usesPodGroup(job)) {
      const apiVersion = PODGROUP_API[job.spec.scheduling.gang as 'podgroup' | 'volcano'];
      await this.d.kube.deleteObject(apiVersion, 'PodGroup', namespace, podGroupName(name));
    }
    if (plan.ensureInfra) await this.guard(key, job, 'FailedCreate', () => this.ensureInfra(key, job, plan.deletePodGroup));
    if (plan.createPods.length) await this.guard(key, job, 'FailedCreatePod', () => this.createPods(key, job, plan));
    else if (plan.ensureInfra) this.createErrors.delete(key);
    return plan.requeueAfterMs === undefined ? {} : { requeueAfterMs: plan.requeueAfterMs };
  }

  forget(key: string): void {
    this.infraDone.delete(key);
    this.createErrors.delete(key);
    this.d.expectations.forget(key);
  }

  private async event(job: XAttnJob, ev: JobEvent): Promise<void> {
    try {
      await this.d.kube.recordEvent(job, ev);
    } catch (e) {
      this.d.log.warn('could not record event', { job: job.metadata.name, reason: ev.reason, error: String(e) });
    }
  }

  /** Runs a create step; a failure is remembered for the Created condition, announced, and rethrown for retry. */
  private async guard(key: string, job: XAttnJob, reason: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const firstTime = this.createErrors.get(key) !== msg;
      this.createErrors.set(key, msg);
      if (firstTime) await this.event(job, { type: 'Warning', reason, message: msg });
      throw e;
    }
  }

  private async deletePods(key: string, job: XAttnJob, plan: Plan): Promise<void> {
    if (!plan.deletePods.length) return;
    const ns = job.metadata.namespace!;
    this.d.expectations.expectDeletions(key, plan.deletePods.map((p) => p.name));
    await eachLimited(plan.deletePods, this.d.writeConcurrency ?? 8, async (p) => {
      try {
        const r = await this.d.kube.deletePod(ns, p);
        if (r === 'deleted') this.d.metrics?.podsDeleted.inc({ namespace: ns });
        else this.d.expectations.deletionObserved(key, p.name);
      } catch (e) {
        this.d.expectations.deletionObserved(key, p.name);
        throw e;
      }
    });
  }

  private async ensureInfra(key: string, job: XAttnJob, suspended: boolean): Promise<void> {
    const fingerprint = `${job.metadata.uid}/${job.metadata.generation}/${suspended}`;
    const ns = job.metadata.namespace!;
    if (this.infraDone.get(key) === fingerprint && this.d.services.get(ns, serviceName(job.metadata.name))) return;
    const infra = desiredInfra(job);
    await this.d.kube.apply(infra.service as any);
    await this.d.kube.apply(infra.configMap as any);
    // Created once and never re-applied: the token must not change under a running gang.
    await this.d.kube.create(buildTokenSecret(job, this.newToken()) as any);
    if (infra.podGroup && !suspended) await this.d.kube.apply(infra.podGroup);
    this.infraDone.set(key, fingerprint);
  }

  private async createPods(key: string, job: XAttnJob, plan: Plan): Promise<void> {
    const ns = job.metadata.namespace!;
    const pods = plan.createPods.map((i) => buildWorkerPod(job, i, plan.attempt));
    this.d.expectations.expectCreations(key, pods.map((p) => p.metadata!.name!));
    let created = 0;
    await eachLimited(pods, this.d.writeConcurrency ?? 8, async (pod) => {
      const podName = pod.metadata!.name!;
      try {
        if ((await this.d.kube.create(pod as any)) === 'created') {
          created++;
          this.d.metrics?.podsCreated.inc({ namespace: ns });
        } else this.d.expectations.creationObserved(key, podName);
      } catch (e) {
        this.d.expectations.creationObserved(key, podName);
        throw e;
      }
    });
    this.createErrors.delete(key);
    if (created) await this.event(job, { type: 'Normal', reason: 'SuccessfulCreatePod', message: `created ${created} worker pods (attempt ${plan.attempt})` });
  }
}
