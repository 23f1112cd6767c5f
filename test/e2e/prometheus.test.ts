// End to end: a real Prometheus scrapes a running `xattn run` training job (each rank's /metrics,
// labelled the way the chart's PodMonitor labels worker pods) and the operator (running against a
// real kube-apiserver and doing real work, scraped the way the chart's ServiceMonitor does). Then
// every PromQL expression of the committed Grafana dashboard is evaluated through Prometheus's HTTP
// API, as a panel would over its time range: a panel that would show nothing fails the test.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperatorHandle } from '../../operator/run.js';
import { freePortRange } from '../../runtime/rendezvous/free-port.js';
import { startCluster, type TestCluster } from '../cluster/harness/cluster.js';
import { createNamespace } from '../cluster/harness/kube.js';
import { startTestOperator } from '../cluster/harness/operator.js';
import { startProcess, stopProcess, tail, waitFor, type Managed } from '../cluster/harness/processes.js';
import { loadDashboard, panelQueries, variableQueries, type PanelQuery } from './dashboard-queries.js';
import { blockedByQuota, failOnce, restartThenSucceed } from './operator-activity.js';
import { labelValues, queryRange, scrapeConfig, startPrometheus, targetHealth, type PrometheusServer, type RangeSeries } from './prometheus.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MANIFEST = path.join(REPO, 'test/e2e/fixtures/train-e2e.yaml');
const JOB = 'e2e-train';
const WORLD = 2;
const SCRAPE_SECONDS = 1;
// What Grafana would pick for $__rate_interval at this scrape interval (four scrapes and then some).
const RATE_INTERVAL = '5s';
const OPERATOR_NAMESPACE = 'xattn-system';

let cluster: TestCluster;
let op: OperatorHandle;
let run: Managed;
let prom: PrometheusServer;
let ns: string;
let startSec: number;
const dashboard = loadDashboard();

beforeAll(async () => {
  cluster = await startCluster();
  ns = await createNamespace(cluster.rest, 'e2e');
  op = await startTestOperator(cluster);
  const dir = path.join(cluster.dir, 'e2e');
  const base = await freePortRange(WORLD);
  run = startProcess(
    process.execPath,
    [path.join(REPO, 'bin/xattn.js'), 'run', MANIFEST, '--metrics-port', String(base), '--checkpoint-dir', path.join(dir, 'checkpoints')],
    path.join(cluster.dir, 'xattn-run.log'),
    { ...process.env, XATTN_FROM_SOURCE: '1' },
  );
  const operatorAddress = new URL(op.metricsUrl!).host;
  prom = await startPrometheus(
    path.join(dir, 'prometheus'),
    scrapeConfig(
      [
        {
          name: 'xattn-workers',
          // The PodMonitor's target labels: namespace and pod, plus the pod label xattnjob.
          targets: Array.from({ length: WORLD }, (_, r) => ({ address: `127.0.0.1:${base + r}`, labels: { namespace: ns, pod: `${JOB}-worker-${r}`, xattnjob: JOB } })),
        },
        // The ServiceMonitor's: honorLabels keeps the job counters' own namespace label.
        { name: 'xattn-operator', honorLabels: true, targets: [{ address: operatorAddress, labels: { namespace: OPERATOR_NAMESPACE } }] },
      ],
      SCRAPE_SECONDS,
    ),
  );
  startSec = Math.floor(Date.now() / 1000) - 1;
});

afterAll(async () => {
  await stopProcess(run);
  await prom?.stop();
  await op?.stop();
  await cluster?.stop();
});

const nowSec = () => Math.ceil(Date.now() / 1000);
const vars = () => ({ namespace: ns, xattnjob: JOB });

async function evaluate(q: PanelQuery): Promise<RangeSeries[]> {
  return queryRange(prom.url, q.expr, startSec, nowSec(), SCRAPE_SECONDS);
}

describe('Prometheus scraping xattn', () => {
  it('scrapes every worker rank and the operator', async () => {
    const health = await waitFor('all targets up', async () => {
      const t = await targetHealth(prom.url);
      return t.length === WORLD + 1 && t.every((x) => x.health === 'up') ? t : undefined;
    }, 90_000, 500).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${JSON.stringify(await targetHealth(prom.url))}\n--- xattn run ---\n${tail(run.logFile)}`);
    });
    expect(health.map((t) => t.job).sort()).toEqual(['xattn-operator', 'xattn-workers', 'xattn-workers']);
  });

  it('sees the operator restart, fail, finish and retry jobs in the API server', async () => {
    await restartThenSucceed(cluster.rest, ns, 'e2e-restarts');
    await failOnce(cluster.rest, ns, 'e2e-fails');
    await blockedByQuota(cluster.rest, 'e2e-blocked');
  });

  it('answers every PromQL expression of the dashboard with data', async () => {
    const queries = panelQueries(dashboard, vars(), RATE_INTERVAL);
    expect(queries.length).toBeGreaterThan(20);
    const empty = async () => {
      const out: string[] = [];
      // NaN samples (0/0 before the first observation) draw nothing either.
      const drawn = (s: RangeSeries) => s.values.some(([, v]) => Number.isFinite(Number(v)));
      for (const q of queries) if (!(await evaluate(q)).some(drawn)) out.push(`${q.id}: ${q.expr}`);
      return out;
    };
    // Rates need a few scrapes, checkpoints a few hundred steps: give the run time, then judge.
    let missing: string[] = [];
    await waitFor('every dashboard query to return data', async () => (missing = await empty()).length === 0, 150_000, 2000).catch(() => {});
    if (missing.length) throw new Error(`panels without data:\n${missing.join('\n')}\n--- xattn run ---\n${tail(run.logFile, 15)}`);
  }, 200_000);

  it('lists the job under the namespace and job template variables', async () => {
    const [nsVar, jobVar] = variableQueries(dashboard, vars());
    expect(nsVar!.name).toBe('namespace');
    expect(await labelValues(prom.url, nsVar!.label, nsVar!.metric, startSec, nowSec())).toContain(ns);
    expect(jobVar!.name).toBe('xattnjob');
    expect(await labelValues(prom.url, jobVar!.label, jobVar!.metric, startSec, nowSec())).toEqual([JOB]);
  });

  it('gives numbers that match what happened', async () => {
    const byTitle = (title: string, ref = 'A') => panelQueries(dashboard, vars(), RATE_INTERVAL).find((q) => q.id === `${title} / ${ref}`)!;
    const lastValues = async (title: string, ref = 'A') =>
      (await evaluate(byTitle(title, ref))).map((s) => ({ labels: s.metric, value: Number(s.values.at(-1)![1]) }));
    const maxOver = async (title: string, ref = 'A') => Math.max(...(await evaluate(byTitle(title, ref))).flatMap((s) => s.values.map((v) => Number(v[1]))));

    expect((await lastValues('Ranks reporting')).map((v) => v.value)).toEqual([WORLD]);
    expect(await maxOver('Text tokens/s')).toBeGreaterThan(0);
    expect(await maxOver('Visual tokens/s')).toBeGreaterThan(await maxOver('Text tokens/s'));
    expect(await maxOver('Last checkpoint step')).toBeGreaterThanOrEqual(100);
    const loss = await lastValues('Loss');
    expect(loss).toHaveLength(1);
    expect(Number.isFinite(loss[0]!.value) && loss[0]!.value > 0).toBe(true);
    expect((await lastValues('Memory per rank')).map((v) => v.labels.rank).sort()).toEqual(['0', '1']);

    const phases = (await lastValues('Jobs by phase')).map((v) => v.labels.phase);
    expect(phases).toEqual(expect.arrayContaining(['Succeeded', 'Failed']));
    const series = async (ref: string) => (await evaluate(byTitle('Job outcomes and gang restarts', ref))).map((s) => s.metric.namespace);
    expect(await series('D')).toContain(ns); // gang restarts, under the job's namespace (honorLabels)
    expect(await maxOver('Reconcile errors/s')).toBeGreaterThan(0);
  });
});
