// Wires informers to the work queue and the queue to reconcile workers. Caches start at once
// (a standby replica stays warm); workers run only while this replica leads.
import type { KubeConfig } from '@kubernetes/client-node';
import { KIND } from '../../crds/types.js';
import type { KubeGateway } from '../kube/gateway.js';
import { SupervisedInformer, type KubeMeta } from '../kube/informer.js';
import { KubeApiError, type KubeRest } from '../kube/rest.js';
import { JOBS, PODS, SERVICES, type ResourceType } from '../kube/resources.js';
import type { Logger } from '../log.js';
import type { OperatorMetrics } from '../metrics.js';
import { CONTROLLER_NAME, LABEL_JOB, LABEL_MANAGED_BY, MANAGED_BY, jobKey } from '../names.js';
import { Expectations } from './expectations.js';
import { Reconciler } from './reconciler.js';
import { WorkQueue } from './workqueue.js';

export interface ControllerOptions {
  kc: KubeConfig;
  rest: KubeRest;
  kube: KubeGateway;
  log: Logger;
  metrics: OperatorMetrics;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  concurrency?: number;
  /** Every job is reconciled at least this often, events or not. */
  resyncMs?: number;
  informerBackoffMs?: number;
}

/** ns/name of the XAttnJob that controls a child object. */
export function ownerKey(obj: KubeMeta): string | undefined {
  const ns = obj.metadata?.namespace;
  if (!ns) return undefined;
  const ref = (obj.metadata?.ownerReferences ?? []).find((r: any) => r?.controller && r?.kind === KIND);
  const name = ref?.name ?? obj.metadata?.labels?.[LABEL_JOB];
  return name ? jobKey(ns, name) : undefined;
}

const isBug = (e: unknown) => e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;

export class JobController {
  readonly jobs: SupervisedInformer<KubeMeta>;
  readonly pods: SupervisedInformer<KubeMeta>;
  readonly services: SupervisedInformer<KubeMeta>;
  readonly queue: WorkQueue;
  readonly expectations = new Expectations();
  readonly reconciler: Reconciler;
  private workers: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;

  constructor(private readonly o: ControllerOptions) {
    this.queue = new WorkQueue({ hooks: o.metrics.queueHooks() });
    o.metrics.trackInFlight(() => this.queue.inFlight());
    const selector = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    this.jobs = this.informer(JOBS, 'xattnjobs');
    this.pods = this.informer(PODS, 'pods', selector);
    this.services = this.informer(SERVICES, 'services', selector);
    o.metrics.jobsByPhase(() => this.jobs.list().map((j) => j.status?.phase));
    this.reconciler = new Reconciler({ kube: o.kube, pods: this.pods, services: this.services, expectations: this.expectations, log: o.log, metrics: o.metrics });

    const enqueueJob = (j: KubeMeta) => this.queue.add(jobKey(j.metadata!.namespace!, j.metadata!.name!));
    this.jobs.on('add', enqueueJob);
    this.jobs.on('update', enqueueJob);
    this.jobs.on('delete', (j) => {
      this.reconciler.forget(jobKey(j.metadata!.namespace!, j.metadata!.name!));
    });
    this.pods.on('add', (p) => this.podEvent(p, 'add'));
    this.pods.on('update', (p) => this.podEvent(p, 'update'));
    this.pods.on('delete', (p) => this.podEvent(p, 'delete'));
    const enqueueOwner = (s: KubeMeta) => {
      const k = ownerKey(s);
      if (k) this.queue.add(k);
    };
    this.services.on('update', enqueueOwner);
    this.services.on('delete', enqueueOwner);
  }

  private informer(resource: ResourceType, label: string, labelSelector?: string): SupervisedInformer<KubeMeta> {
    return new SupervisedInformer<KubeMeta>({
      kc: this.o.kc,
      rest: this.o.rest,
      resource,
      namespace: this.o.namespace,
      labelSelector,
      initialBackoffMs: this.o.informerBackoffMs,
      onError: (err) => {
        this.o.metrics.informerRestarts.inc({ resource: label });
        this.o.log.warn('watch failed; the supervisor restarts it', { resource: label, error: String((err as Error)?.message ?? err) });
      },
    });
  }

  private podEvent(pod: KubeMeta, verb: 'add' | 'update' | 'delete'): void {
    const key = ownerKey(pod);
    if (!key) return;
    if (verb === 'add') this.expectations.creationObserved(key, pod.metadata!.name!);
    if (verb === 'delete') this.expectations.deletionObserved(key, pod.metadata!.name!);
    this.queue.add(key);
  }

  /** Starts the caches (done by every replica). */
  startInformers(): void {
    this.jobs.start();
    this.pods.start();
    this.services.start();
  }

  get synced(): boolean {
    return this.jobs.synced && this.pods.synced && this.services.synced;
  }

  /** Starts reconcile workers (done by the leader only). */
  startWorkers(): void {
    const n = this.o.concurrency ?? 4;
    this.o.metrics.maxConcurrent.set({ controller: CONTROLLER_NAME }, n);
    for (const j of this.jobs.list()) this.queue.add(jobKey(j.metadata!.namespace!, j.metadata!.name!));
    this.workers = Array.from({ length: n }, () => this.worker());
    const resync = this.o.resyncMs ?? 300_000;
    this.resyncTimer = setInterval(() => {
      for (const j of this.jobs.list()) this.queue.add(jobKey(j.metadata!.namespace!, j.metadata!.name!));
    }, resync);
    this.resyncTimer.unref();
  }

  /** Lets in-flight reconciles finish, then stops the workers and the caches. */
  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await Promise.all([this.jobs.stop(), this.pods.stop(), this.services.stop()]);
  }

  private async worker(): Promise<void> {
    const m = this.o.metrics;
    const l = { controller: CONTROLLER_NAME };
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      m.activeWorkers.inc(l);
      const end = m.reconcileTime.startTimer(l);
      let result: 'success' | 'error' | 'requeue' | 'requeue_after' = 'success';
      try {
        const out = await this.reconciler.reconcile(key);
        if (out.requeueAfterMs === 0) {
          result = 'requeue';
          this.queue.addRateLimited(key);
        } else if (out.requeueAfterMs !== undefined) {
          result = 'requeue_after';
          this.queue.forget(key);
          this.queue.addAfter(key, out.requeueAfterMs);
        } else this.queue.forget(key);
      } catch (e) {
        result = 'error';
        m.reconcileErrors.inc(l);
        if (isBug(e)) m.reconcilePanics.inc(l);
        const delay = this.queue.addRateLimited(key);
        const detail = e instanceof KubeApiError ? e.message : String((e as Error)?.stack ?? e);
        this.o.log.warn('reconcile failed; retrying', { job: key, retryInMs: delay, error: detail });
      } finally {
        this.o.log.debug('reconciled', { job: key, result });
        end();
        m.activeWorkers.dec(l);
        m.reconcileTotal.inc({ ...l, result });
        this.queue.done(key);
      }
    }
  }
}
