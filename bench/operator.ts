// npm run bench:operator — 100 XAttnJobs × 8 workers against a real kube-apiserver + etcd on
// loopback (scripts/kube-assets.sh builds them). Measures, for the operator running as its own
// process: time from the first create until every worker pod exists, until every job reports
// Created, and the operator's peak RSS (VmHWM). Writes bench/results/operator-<date>.json.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jobManifest, createJob, createNamespace } from '../test/cluster/harness/kube.js';
import { startCluster } from '../test/cluster/harness/cluster.js';
import { metricValue, scrape, spawnReadyOperator } from '../test/cluster/harness/operator.js';
import { stopProcess } from '../test/cluster/harness/processes.js';
import { JOBS, PODS, resourcePath } from '../operator/kube/resources.js';

const JOB_COUNT = Number(process.env.XATTN_BENCH_JOBS ?? 100);
const WORKERS = Number(process.env.XATTN_BENCH_WORKERS ?? 8);
const root = fileURLToPath(new URL('..', import.meta.url));
const device = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB)`;

function procKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!(await probe())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now();
}

const cluster = await startCluster();
let exitCode = 0;
try {
  const ns = await createNamespace(cluster.rest, 'bench');
  const op = await spawnReadyOperator(cluster, 'bench-operator', 'bench-lease');
  const pid = op.proc.proc.pid!;
  const rssIdleKiB = procKiB(pid, 'VmRSS');
  const totalPods = JOB_COUNT * WORKERS;
  const countPods = async () => (await cluster.rest.get(resourcePath(PODS, ns), { query: { labelSelector: 'app.kubernetes.io/managed-by=xattn-operator' } })).items.length;
  const countCreated = async () => (await cluster.rest.get(resourcePath(JOBS, ns))).items.filter((j: any) => j.status?.phase === 'Created').length;

  const t0 = performance.now();
  const names = Array.from({ length: JOB_COUNT }, (_, i) => `bench-${i}`);
  // Submitted by 10 concurrent clients, as a burst of kubectl applies would arrive.
  const queue = [...names];
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) await createJob(cluster.rest, ns, jobManifest(n, { workers: WORKERS, gpusPerWorker: 8 }));
    }),
  );
  const tSubmitted = performance.now();
  const tPods = await until(`${totalPods} pods`, async () => (await countPods()) >= totalPods, 600_000);
  const tCreated = await until(`${JOB_COUNT} jobs Created`, async () => (await countCreated()) === JOB_COUNT, 600_000);
  const peakKiB = procKiB(pid, 'VmHWM');
  const afterKiB = procKiB(pid, 'VmRSS');
  const metrics = await scrape(op.metricsUrl);
  const pods = await countPods();

  const result = {
    device,
    date: new Date().toISOString(),
    node: process.version,
    apiServer: (await cluster.rest.get('/version')).gitVersion,
    jobs: JOB_COUNT,
    workersPerJob: WORKERS,
    podsCreated: pods,
    submit_seconds: (tSubmitted - t0) / 1000,
    all_pods_exist_seconds: (tPods - t0) / 1000,
    all_jobs_created_seconds: (tCreated - t0) / 1000,
    pods_per_second: totalPods / ((tPods - t0) / 1000),
    operator_peak_rss_mib: peakKiB / 1024,
    // The operator runs from TypeScript through tsx here: its transpiler accounts for much of the idle RSS.
    operator_idle_rss_mib: rssIdleKiB / 1024,
    operator_rss_after_load_mib: afterKiB / 1024,
    reconciles: metricValue(metrics, 'controller_runtime_reconcile_total'),
    reconcile_errors: metricValue(metrics, 'controller_runtime_reconcile_errors_total'),
    api_requests: metricValue(metrics, 'rest_client_requests_total'),
    duplicate_or_extra_pods: pods - totalPods,
  };
  console.table(result);
  const dir = path.join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `operator-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${path.relative(root, file)}`);
  await stopProcess(op.proc);
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  await cluster.stop();
}
process.exit(exitCode);
