// Small PromQL builders for the dashboard: every worker query is filtered by the namespace and job
// template variables, and every rate uses Grafana's $__rate_interval (at least four scrapes, so a
// rate never comes out empty at long scrape intervals).
import { CONTROLLER, JOB_LABEL } from './sources.js';

export const RATE_INTERVAL = '$__rate_interval';
/** Series of one or more jobs: the dashboard's $namespace and $xattnjob variables (multi-value, regex). */
export const JOB_SELECTOR = `namespace=~"$namespace",${JOB_LABEL}=~"$${JOB_LABEL}"`;
/** Operator series of the xattnjob controller only (other controller-runtime operators may share Prometheus). */
export const CONTROLLER_SELECTOR = `controller="${CONTROLLER}"`;

/** Grouping that keeps jobs apart (a job name is unique only within its namespace). */
export const BY_JOB = `namespace, ${JOB_LABEL}`;

export function series(metric: string, selector = JOB_SELECTOR): string {
  return `${metric}{${selector}}`;
}

export function rate(metric: string, selector = JOB_SELECTOR): string {
  return `rate(${series(metric, selector)}[${RATE_INTERVAL}])`;
}

export function increase(metric: string, selector: string): string {
  return `increase(${series(metric, selector)}[${RATE_INTERVAL}])`;
}

export function sumBy(by: string, expr: string): string {
  return `sum by (${by}) (${expr})`;
}

/** Quantile q of a histogram's observations over the rate interval, per `by` group. */
export function quantile(q: number, histogram: string, by: string, selector = JOB_SELECTOR): string {
  return `histogram_quantile(${q}, sum by (${by}, le) (${rate(`${histogram}_bucket`, selector)}))`;
}

/** Mean observation of a histogram over the rate interval, per `by` group. */
export function meanOver(histogram: string, by: string, selector = JOB_SELECTOR): string {
  return `${sumBy(by, rate(`${histogram}_sum`, selector))} / ${sumBy(by, rate(`${histogram}_count`, selector))}`;
}

/** Legend of a job's series: "<job>" plus a suffix. */
export function legend(suffix = ''): string {
  return `{{${JOB_LABEL}}}${suffix ? ` ${suffix}` : ''}`;
}
