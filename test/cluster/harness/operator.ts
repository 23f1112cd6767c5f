// Runs the operator in-process against a test cluster, with short leader-election timings and
// ephemeral probe ports; and as a separate OS process, for kill and two-replica tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger, jsonLogger } from '../../../operator/log.js';
import { startOperator, type OperatorHandle, type OperatorOptions } from '../../../operator/run.js';
import type { TestCluster } from './cluster.js';
import { mustBeRunning, startProcess, waitFor, type Managed } from './processes.js';

export const FAST_LEASE = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 };

export function startTestOperator(cluster: TestCluster, opts: Partial<OperatorOptions> = {}): Promise<OperatorHandle> {
  return startOperator({
    kubeconfig: cluster.kubeconfigPath,
    metricsAddress: '127.0.0.1:0',
    healthAddress: '127.0.0.1:0',
    leaderElection: { namespace: 'default', name: `xattn-test-${process.pid}`, ...FAST_LEASE },
    logger: process.env.XATTN_TEST_LOG ? jsonLogger('debug') : silentLogger,
    ...opts,
  });
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const OPERATOR_MAIN = path.join(here, 'operator-main.ts');

/** The operator as its own process (node + tsx), logging JSON lines to logFile. */
export function spawnOperator(cluster: TestCluster, identity: string, logFile: string, leaseName: string, extraEnv: Record<string, string> = {}): Managed {
  return startProcess(process.execPath, ['--import', 'tsx', OPERATOR_MAIN], logFile, {
    ...process.env,
    XATTN_TEST_KUBECONFIG: cluster.kubeconfigPath,
    XATTN_TEST_IDENTITY: identity,
    XATTN_TEST_LEASE: leaseName,
    ...extraEnv,
  });
}

export async function scrape(url: string): Promise<string> {
  const r = await fetch(`${url}/metrics`);
  return r.text();
}

/** Sum of a metric's samples whose labels include all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[3] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[4]);
  }
  return sum;
}

export interface SpawnedOperator {
  identity: string;
  proc: Managed;
  metricsUrl: string;
  healthUrl: string;
}

/** Spawns an operator process and waits until it has printed its URLs and its caches are synced. */
export async function spawnReadyOperator(cluster: TestCluster, identity: string, leaseName: string): Promise<SpawnedOperator> {
  const logFile = path.join(cluster.dir, `operator-${identity}.log`);
  const proc = spawnOperator(cluster, identity, logFile, leaseName);
  const urls = await waitFor(`operator ${identity} to start`, () => {
    mustBeRunning(proc, `operator ${identity}`);
    const line = readFileSync(logFile, 'utf8').split('\n').find((l) => l.startsWith('{"metricsUrl"'));
    return line ? (JSON.parse(line) as { metricsUrl: string; healthUrl: string }) : undefined;
  }, 60_000);
  await waitFor(`operator ${identity} ready`, () => fetch(`${urls.healthUrl}/readyz`).then((r) => r.ok, () => false), 30_000);
  return { identity, proc, ...urls };
}

export async function leaseHolder(cluster: TestCluster, leaseName: string): Promise<string | undefined> {
  try {
    const lease = await cluster.rest.get(`/apis/coordination.k8s.io/v1/namespaces/default/leases/${leaseName}`);
    return lease.spec?.holderIdentity || undefined;
  } catch {
    return undefined;
  }
}
