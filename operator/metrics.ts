// Operator metrics under controller-runtime's names (so its dashboards and alerts work as they
// are) plus xattnjob_* job counters. One Registry per operator instance: tests get their own.
import client from 'prom-client';
import { CONTROLLER_NAME } from './names.js';
import type { QueueHooks } from './controller/workqueue.js';
import type { Transition } from './status/plan.js';

const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } = client;

export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';

export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];
  readonly reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Total number of reconciliations per controller', labelNames: ['controller', 'result'], registers: this.r });
  readonly reconcileErrors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Total number of reconciliation errors per controller', labelNames: ['controller'], registers: this.r });
  readonly terminalErrors = new Counter({ name: 'controller_runtime_terminal_reconcile_errors_total', help: 'Total number of terminal reconciliation errors per controller', labelNames: ['controller'], registers: this.r });
  readonly reconcilePanics = new Counter({ name: 'controller_runtime_reconcile_panics_total', help: 'Total number of reconciliation panics (unexpected exceptions) per controller', labelNames: ['controller'], registers: this.r });
  readonly reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Length of time per reconciliation per controller', labelNames: ['controller'], buckets: exponentialBuckets(0.005, 2, 14), registers: this.r });
  readonly activeWorkers = new Gauge({ name: 'controller_runtime_active_workers', help: 'Number of currently used workers per controller', labelNames: ['controller'], registers: this.r });
  readonly maxConcurrent = new Gauge({ name: 'controller_runtime_max_concurrent_reconciles', help: 'Maximum number of concurrent reconciles per controller', labelNames: ['controller'], registers: this.r });

  readonly queueDepth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: ['name', 'controller'], registers: this.r });
  readonly queueAdds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: ['name', 'controller'], registers: this.r });
  readonly queueRetries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: ['name', 'controller'], registers: this.r });
  readonly queueLatency = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long in seconds an item stays in workqueue before being requested', labelNames: ['name', 'controller'], buckets: exponentialBuckets(1e-6, 10, 11), registers: this.r });
  readonly workDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long in seconds processing an item from workqueue takes', labelNames: ['name', 'controller'], buckets: exponentialBuckets(1e-6, 10, 11), registers: this.r });
  readonly unfinishedWork = new Gauge({ name: 'workqueue_unfinished_work_seconds', help: 'How many seconds of work has been done that is in progress and has not been observed by work_duration', labelNames: ['name', 'controller'], registers: this.r });
  readonly longestRunning = new Gauge({ name: 'workqueue_longest_running_processor_seconds', help: 'How many seconds has the longest running processor for workqueue been running', labelNames: ['name', 'controller'], registers: this.r });

  readonly leaderStatus = new Gauge({ name: 'leader_election_master_status', help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master', labelNames: ['name'], registers: this.r });
  readonly restRequests = new Counter({ name: 'rest_client_requests_total', help: 'Number of HTTP requests, partitioned by status code, method, and host', labelNames: ['code', 'method', 'host'], registers: this.r });
  readonly informerRestarts = new Counter({ name: 'xattnjob_informer_restarts_total', help: 'List/watch cycles that failed and were restarted by the supervisor', labelNames: ['resource'], registers: this.r });

  readonly jobTransitions = {
    created: new Counter({ name: 'xattnjob_jobs_created_total', help: 'XAttnJobs the operator started handling', labelNames: ['namespace'], registers: this.r }),
    succeeded: new Counter({ name: 'xattnjob_jobs_succeeded_total', help: 'XAttnJobs that succeeded', labelNames: ['namespace'], registers: this.r }),
    failed: new Counter({ name: 'xattnjob_jobs_failed_total', help: 'XAttnJobs that failed', labelNames: ['namespace'], registers: this.r }),
    restarted: new Counter({ name: 'xattnjob_jobs_restarted_total', help: 'Whole-gang restarts', labelNames: ['namespace'], registers: this.r }),
    suspended: new Counter({ name: 'xattnjob_jobs_suspended_total', help: 'XAttnJob suspensions', labelNames: ['namespace'], registers: this.r }),
    resumed: new Counter({ name: 'xattnjob_jobs_resumed_total', help: 'XAttnJob resumptions', labelNames: ['namespace'], registers: this.r }),
  } satisfies Record<Transition, client.Counter<'namespace'>>;
  readonly podsCreated = new Counter({ name: 'xattnjob_pods_created_total', help: 'Worker pods created', labelNames: ['namespace'], registers: this.r });
  readonly podsDeleted = new Counter({ name: 'xattnjob_pods_deleted_total', help: 'Worker pods deleted', labelNames: ['namespace'], registers: this.r });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Scrape-time job counts per phase, read from the informer cache. */
  jobsByPhase(read: () => Iterable<string | undefined>): void {
    new Gauge({
      name: 'xattnjob_jobs',
      help: 'XAttnJobs by phase',
      labelNames: ['phase'],
      registers: this.r,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const p of read()) counts.set(p ?? 'Pending', (counts.get(p ?? 'Pending') ?? 0) + 1);
        for (const [phase, n] of counts) this.set({ phase }, n);
      },
    });
  }

  queueHooks(name = CONTROLLER_NAME): QueueHooks {
    const l = { name, controller: CONTROLLER_NAME };
    return {
      onAdd: () => this.queueAdds.inc(l),
      onRetry: () => this.queueRetries.inc(l),
      onDepth: (d) => this.queueDepth.set(l, d),
      onGet: (_k, waitedMs) => this.queueLatency.observe(l, waitedMs / 1000),
      onDone: (_k, workedMs) => this.workDuration.observe(l, workedMs / 1000),
    };
  }

  /** Unfinished-work gauges from the queue's in-flight keys, refreshed at scrape time. */
  trackInFlight(inFlight: () => ReadonlyMap<string, number>, now: () => number = Date.now, name = CONTROLLER_NAME): void {
    const l = { name, controller: CONTROLLER_NAME };
    const refresh = () => {
      let total = 0;
      let longest = 0;
      for (const started of inFlight().values()) {
        const s = (now() - started) / 1000;
        total += s;
        longest = Math.max(longest, s);
      }
      this.unfinishedWork.set(l, total);
      this.longestRunning.set(l, longest);
    };
    this.registry.registerMetric(
      new Gauge({ name: 'xattnjob_workqueue_inflight', help: 'Keys being reconciled right now', registers: [], collect() { refresh(); this.set(inFlight().size); } }),
    );
  }
}
