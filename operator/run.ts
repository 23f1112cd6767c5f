// The operator process: caches, leader election, reconcile workers, probe and metrics servers,
// and an orderly shutdown. `xattn operator` is a thin layer over runOperator.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { JobController } from './controller/controller.js';
import { LeaderElector } from './controller/leader.js';
import { RestGateway } from './kube/gateway.js';
import { RestLeaseStore } from './kube/lease-store.js';
import { KubeRest } from './kube/rest.js';
import { jsonLogger, type Level, type Logger } from './log.js';
import { OperatorMetrics } from './metrics.js';
import { startProbeServer, type ProbeServer } from './server.js';

export interface LeaderElectionOptions {
  /** Namespace of the Lease; default: the pod's namespace in-cluster, else POD_NAMESPACE, else default. */
  namespace?: string;
  name?: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface OperatorOptions {
  /** Kubeconfig file; default $KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfig?: string;
  context?: string;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  concurrency?: number;
  /** false runs without leader election (one replica only). Default: on. */
  leaderElection?: boolean | LeaderElectionOptions;
  /** /metrics listen address; default ":8080"; false: none. */
  metricsAddress?: string | false;
  /** /healthz and /readyz listen address; default ":8081"; false: none. */
  healthAddress?: string | false;
  resyncMs?: number;
  logLevel?: Level;
  logger?: Logger;
  /** Stop on SIGINT/SIGTERM (runOperator sets it). */
  handleSignals?: boolean;
}

export interface OperatorHandle {
  identity: string;
  metricsUrl?: string;
  healthUrl?: string;
  metrics: OperatorMetrics;
  controller: JobController;
  isLeader(): boolean;
  /** Graceful stop: finish in-flight reconciles, hand back the Lease, close servers. */
  stop(): Promise<void>;
  /** Settles when the operator has stopped; rejects if it stopped because it lost leadership. */
  done: Promise<void>;
}

export function loadKubeConfig(file?: string, context?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (e) {
    throw new Error(`cannot load the kubeconfig ${file ?? process.env.KUBECONFIG ?? '~/.kube/config'}: ${(e as Error).message}`);
  }
  if (context) kc.setCurrentContext(context);
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured: set KUBECONFIG, pass a kubeconfig, or run in a pod');
  return kc;
}

function leaseNamespace(explicit?: string): string {
  if (explicit) return explicit;
  const saNs = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
  if (existsSync(saNs)) return readFileSync(saNs, 'utf8').trim();
  return process.env.POD_NAMESPACE || 'default';
}

export async function startOperator(opts: OperatorOptions = {}): Promise<OperatorHandle> {
  const log = opts.logger ?? jsonLogger(opts.logLevel ?? 'info');
  const kc = loadKubeConfig(opts.kubeconfig, opts.context);
  const le: LeaderElectionOptions | undefined = opts.leaderElection === false ? undefined : opts.leaderElection === true || !opts.leaderElection ? {} : opts.leaderElection;
  const identity = le?.identity ?? `${os.hostname()}_${randomBytes(4).toString('hex')}`;
  const metrics = new OperatorMetrics();
  const host = new URL(kc.getCurrentCluster()!.server).host;
  const rest = new KubeRest(kc, (method, code) => metrics.restRequests.inc({ code: String(code === 'error' ? '<error>' : code), method, host }));
  const controller = new JobController({ kc, rest, kube: new RestGateway(rest, identity), log, metrics, namespace: opts.namespace, concurrency: opts.concurrency, resyncMs: opts.resyncMs });

  let stopping = false;
  const servers: ProbeServer[] = [];
  const metricsAddr = opts.metricsAddress ?? ':8080';
  const healthAddr = opts.healthAddress ?? ':8081';
  const metricsServer = metricsAddr === false ? undefined : await startProbeServer({ address: metricsAddr, registry: metrics.registry });
  if (metricsServer) servers.push(metricsServer);
  const healthServer = healthAddr === false ? undefined : await startProbeServer({ address: healthAddr, ready: () => !stopping && controller.synced });
  if (healthServer) servers.push(healthServer);

  controller.startInformers();
  const abort = new AbortController();
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => {});
  let elector: LeaderElector | undefined;
  const leaseName = le?.name ?? 'xattnjob-operator';
  const stop = async (err?: Error) => {
    if (stopping) return done;
    stopping = true;
    log.info('stopping operator', { identity, reason: err?.message ?? 'requested' });
    abort.abort();
    await controller.stop();
    await elector?.release();
    metrics.leaderStatus.set({ name: leaseName }, 0);
    await Promise.all(servers.map((s) => s.close()));
    rest.close();
    if (err) settle.reject(err);
    else settle.resolve();
    return done.catch(() => {});
  };

  if (le) {
    const leaseMs = le.leaseDurationMs ?? 15_000;
    elector = new LeaderElector({
      store: new RestLeaseStore(rest, leaseNamespace(le.namespace), leaseName, Math.max(1000, Math.floor((le.retryPeriodMs ?? 2000) * 2))),
      identity,
      leaseDurationMs: leaseMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      onError: (e) => log.debug('leader election attempt failed', { error: String((e as Error)?.message ?? e) }),
    });
    metrics.leaderStatus.set({ name: leaseName }, 0);
    void elector.run(
      abort.signal,
      () => {
        log.info('became leader; starting reconcile workers', { identity, lease: leaseName });
        metrics.leaderStatus.set({ name: leaseName }, 1);
        controller.startWorkers();
      },
      () => {
        log.error('lost leadership; stopping so that only one replica acts', { identity, lease: leaseName });
        void stop(new Error('lost leader election lease'));
      },
    );
  } else controller.startWorkers();

  if (opts.handleSignals) {
    const onSignal = (sig: string) => {
      log.info('received signal', { signal: sig });
      void stop();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    void done.finally(() => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }).catch(() => {});
  }
  log.info('operator started', { identity, namespace: opts.namespace ?? '(all)', leaderElection: Boolean(le), metrics: metricsServer?.url, health: healthServer?.url });
  return {
    identity,
    metricsUrl: metricsServer?.url,
    healthUrl: healthServer?.url,
    metrics,
    controller,
    isLeader: () => (elector ? elector.isLeader : !stopping),
    stop: () => stop(),
    done,
  };
}

/** Runs until SIGINT/SIGTERM (resolves) or lost leadership (rejects, so the process exits non-zero). */
export async function runOperator(opts: OperatorOptions = {}): Promise<void> {
  const handle = await startOperator({ ...opts, handleSignals: true });
  await handle.done;
}
