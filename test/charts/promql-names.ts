// Metric names in a PromQL expression, and the names the code really exports (read from the
// worker's and the operator's live prom-client registries, histogram series included).
import { OperatorMetrics } from '../../operator/metrics.js';
import { WorkerMetrics } from '../../runtime/metrics/worker-metrics.js';

// PromQL's functions, aggregations and keywords: identifiers that are not metric names.
const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'histogram_quantile', 'clamp_min', 'clamp_max', 'clamp',
  'time', 'vector', 'scalar', 'abs', 'absent', 'label_replace', 'label_join', 'sort', 'sort_desc', 'resets', 'changes',
  'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'last_over_time', 'label_values',
]);

/** Identifiers of an expression that name series (labels, strings, durations and functions removed). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // string literals
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // range selectors
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1'); // label lists
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    if (PROMQL_WORDS.has(word)) continue;
    names.add(word);
  }
  return [...names];
}

/** Every series name the worker and the operator expose on /metrics. */
export async function exportedNames(): Promise<Set<string>> {
  const worker = new WorkerMetrics({ rank: 0, worldSize: 1, backend: 'cpu', algorithm: 'lv-xattn' });
  const operator = new OperatorMetrics();
  operator.jobsByPhase(() => []);
  operator.trackInFlight(() => new Map());
  const names = new Set<string>();
  for (const registry of [worker.registry, operator.registry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
      if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
    }
  }
  return names;
}
