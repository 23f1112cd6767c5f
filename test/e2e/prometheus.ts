// A real Prometheus (Debian's package, via scripts/prometheus-assets.sh) on loopback for the
// end-to-end suite: a generated scrape config, start/stop by pid, and the HTTP API calls the
// dashboard's queries go through.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort, mustBeRunning, startProcess, stopProcess, tail, waitFor, type Managed } from '../cluster/harness/processes.js';

export function findPrometheus(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.XATTN_PROMETHEUS, '/usr/bin/prometheus'].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  throw new Error(`E2E TESTS CANNOT RUN: no prometheus binary (looked in ${candidates.join(', ')}). Install it with: bash scripts/prometheus-assets.sh`);
}

export interface ScrapeJob {
  name: string;
  /** host:port targets, each with its own extra target labels (as a PodMonitor/ServiceMonitor would set). */
  targets: { address: string; labels: Record<string, string> }[];
  honorLabels?: boolean;
}

export function scrapeConfig(jobs: ScrapeJob[], intervalSeconds: number): string {
  return stringify({
    global: { scrape_interval: `${intervalSeconds}s`, scrape_timeout: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    scrape_configs: jobs.map((j) => ({
      job_name: j.name,
      honor_labels: j.honorLabels ?? false,
      static_configs: j.targets.map((t) => ({ targets: [t.address], labels: t.labels })),
    })),
  });
}

export interface PrometheusServer {
  url: string;
  proc: Managed;
  stop(): Promise<void>;
}

export async function startPrometheus(dir: string, config: string): Promise<PrometheusServer> {
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const port = await freePort();
  const proc = startProcess(
    findPrometheus(),
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'],
    path.join(dir, 'prometheus.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('prometheus ready', async () => {
      mustBeRunning(proc, 'prometheus');
      return fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    }, 60_000, 200);
  } catch (e) {
    await stopProcess(proc);
    throw new Error(`${(e as Error).message}\n--- prometheus log ---\n${tail(proc.logFile)}`);
  }
  return { url, proc, stop: () => stopProcess(proc) };
}

export interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

async function api<T>(url: string): Promise<T> {
  const r = await fetch(url);
  const body = (await r.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (body.status !== 'success') throw new Error(`${body.errorType ?? r.status}: ${body.error ?? 'query failed'} (${decodeURIComponent(url)})`);
  return body.data;
}

/** /api/v1/query_range, as a Grafana time-series panel asks: one matrix over [start, end]. */
export async function queryRange(base: string, expr: string, startSec: number, endSec: number, stepSec: number): Promise<RangeSeries[]> {
  const q = new URLSearchParams({ query: expr, start: String(startSec), end: String(endSec), step: String(stepSec) });
  const data = await api<{ resultType: string; result: RangeSeries[] }>(`${base}/api/v1/query_range?${q}`);
  return data.result;
}

/** /api/v1/label/<name>/values restricted to `match`: what Grafana's label_values() variable runs. */
export async function labelValues(base: string, label: string, match: string, startSec: number, endSec: number): Promise<string[]> {
  const q = new URLSearchParams({ 'match[]': match, start: String(startSec), end: String(endSec) });
  return api<string[]>(`${base}/api/v1/label/${label}/values?${q}`);
}

/** Scrape health of every target (/api/v1/targets). */
export async function targetHealth(base: string): Promise<{ job: string; instance: string; health: string; lastError: string }[]> {
  const data = await api<{ activeTargets: any[] }>(`${base}/api/v1/targets`);
  return data.activeTargets.map((t) => ({ job: t.labels.job, instance: t.labels.instance, health: t.health, lastError: t.lastError }));
}
