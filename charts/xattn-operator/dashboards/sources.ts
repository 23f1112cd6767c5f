// The series the dashboard reads, by name, from the code that exports them: worker metrics from the
// runtime's constants; operator metrics under controller-runtime's names and the xattnjob_* job
// counters (operator/metrics.ts registers them; test/charts/dashboard.test.ts checks every name
// used here against that registry and the worker's).
import { CONTROLLER_NAME, LABEL_JOB } from '../../../operator/names.js';
import { COMM_OPS, METRIC } from '../../../runtime/metrics/names.js';

export const WORKER = METRIC;
export { COMM_OPS };

/** Label that identifies a job's series: the worker pods' label, copied on by the PodMonitor. */
export const JOB_LABEL = LABEL_JOB;
/** The operator's controller label value (controller-runtime's `controller`). */
export const CONTROLLER = CONTROLLER_NAME;

export const OPERATOR = {
  reconcileTotal: 'controller_runtime_reconcile_total',
  reconcileErrorsTotal: 'controller_runtime_reconcile_errors_total',
  reconcileTimeSeconds: 'controller_runtime_reconcile_time_seconds',
  workqueueDepth: 'workqueue_depth',
  jobsByPhase: 'xattnjob_jobs',
  jobsCreatedTotal: 'xattnjob_jobs_created_total',
  jobsSucceededTotal: 'xattnjob_jobs_succeeded_total',
  jobsFailedTotal: 'xattnjob_jobs_failed_total',
  jobsRestartedTotal: 'xattnjob_jobs_restarted_total',
} as const;
