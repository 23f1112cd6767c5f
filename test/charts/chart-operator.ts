// Runs the operator the way the chart's Deployment does: the real `xattn` CLI with the rendered
// container args and environment (downward-API values filled in as a kubelet would), outside a
// pod, so a kubeconfig stands in for the mounted ServiceAccount token. Only the listen addresses
// are moved to free loopback ports (appended, so they win over the rendered ones).
import path from 'node:path';
import { metricValue, scrape } from '../cluster/harness/operator.js';
import { freePortRange } from '../../runtime/rendezvous/free-port.js';
import { mustBeRunning, startProcess, stopProcess, waitFor, type Managed } from '../cluster/harness/processes.js';
import { REPO, findObject, type K8sObject } from './helm.js';

export interface ChartOperator {
  proc: Managed;
  metricsUrl: string;
  isLeader(): Promise<boolean>;
  /** Samples of rest_client_requests_total answered 403. */
  forbidden(): Promise<number>;
  stop(): Promise<void>;
}

function containerEnv(deployment: K8sObject, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  const fields: Record<string, string> = { 'metadata.namespace': deployment.metadata.namespace!, 'metadata.name': podName };
  for (const e of deployment.spec.template.spec.containers[0].env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = fields[e.valueFrom.fieldRef.fieldPath] ?? '';
  }
  return env;
}

export async function startChartOperator(objs: K8sObject[], kubeconfig: string, logFile: string): Promise<ChartOperator> {
  const dep = findObject(objs, 'Deployment');
  const args: string[] = dep.spec.template.spec.containers[0].args;
  const metricsPort = await freePortRange(2);
  const healthPort = metricsPort + 1;
  const proc = startProcess(
    process.execPath,
    [path.join(REPO, 'bin/xattn.js'), ...args, '--kubeconfig', kubeconfig, `--metrics-address=127.0.0.1:${metricsPort}`, `--health-address=127.0.0.1:${healthPort}`],
    logFile,
    { ...process.env, KUBECONFIG: '', XATTN_FROM_SOURCE: '1', ...containerEnv(dep, `${dep.metadata.name}-0`) },
  );
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  await waitFor('the operator ready (/readyz)', async () => {
    mustBeRunning(proc, 'the operator');
    return fetch(`http://127.0.0.1:${healthPort}/readyz`).then((r) => r.ok, () => false);
  }, 60_000, 200);
  return {
    proc,
    metricsUrl,
    isLeader: async () => metricValue(await scrape(metricsUrl), 'leader_election_master_status') === 1,
    forbidden: async () => metricValue(await scrape(metricsUrl), 'rest_client_requests_total', { code: '403' }),
    stop: () => stopProcess(proc),
  };
}
