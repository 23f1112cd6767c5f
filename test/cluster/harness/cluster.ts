// A real control plane on loopback for the cluster suite: etcd plus kube-apiserver (no scheduler,
// kubelet or controller-manager: tests play the kubelet by patching pod status, and nothing
// garbage-collects). Token auth, a self-signed serving cert, the XAttnJob CRD installed.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadCrd } from '../../../crds/validate.js';
import { KubeRest, isStatus } from '../../../operator/kube/rest.js';
import { findKubeAssets, type KubeAssets } from './assets.js';
import { freePortRange } from '../../../runtime/rendezvous/free-port.js';
import { mustBeRunning, startProcess, stopProcess, tail, waitFor, type Managed } from './processes.js';

const TOKEN = 'xattn-cluster-test-token';

export interface TestCluster {
  dir: string;
  server: string;
  kubeconfigPath: string;
  kc: KubeConfig;
  rest: KubeRest;
  /** Kills kube-apiserver (etcd keeps the data). */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits until it is ready. */
  startApiServer(): Promise<void>;
  apiServerLog: string;
  /** Applies a CRD (YAML already parsed) and waits until it is Established. */
  installCrd(crd: Record<string, any>): Promise<void>;
  stop(): Promise<void>;
}

function scratchDir(): string {
  // etcd fsyncs on every write: tmpfs keeps the suite fast on a small disk.
  const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return mkdtempSync(path.join(base, 'xattn-cluster-'));
}

export async function startCluster(): Promise<TestCluster> {
  const assets: KubeAssets = findKubeAssets();
  const dir = scratchDir();
  const etcdPort = await freePortRange(3); // three distinct ports: etcd's client and peer, then the API server's
  const [peerPort, apiPort] = [etcdPort + 1, etcdPort + 2];
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = path.join(dir, 'sa.key');
  writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(path.join(dir, 'tokens.csv'), `${TOKEN},xattn-admin,xattn-admin,system:masters\n`);
  mkdirSync(path.join(dir, 'certs'));

  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const etcd: Managed = startProcess(
    assets.etcd,
    ['--name', 'default', '--data-dir', path.join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `default=${peerUrl}`, '--log-level', 'warn'],
    path.join(dir, 'etcd.log'),
  );
  const apiLog = path.join(dir, 'kube-apiserver.log');
  const apiArgs = [
    '--etcd-servers', etcdUrl,
    '--bind-address', '127.0.0.1',
    '--advertise-address', '127.0.0.1',
    '--secure-port', String(apiPort),
    '--cert-dir', path.join(dir, 'certs'),
    '--token-auth-file', path.join(dir, 'tokens.csv'),
    '--authorization-mode', 'RBAC',
    '--service-account-issuer', 'https://kubernetes.default.svc',
    '--service-account-key-file', saKey,
    '--service-account-signing-key-file', saKey,
    '--service-cluster-ip-range', '10.0.0.0/24',
    // No controller-manager creates default ServiceAccounts, so pods could not be admitted.
    '--disable-admission-plugins', 'ServiceAccount',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--endpoint-reconciler-type', 'none',
    '--v', '1',
  ];
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'admin', user: { token: TOKEN } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin', namespace: 'default' } }],
      'current-context': 'test',
    }),
  );
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const rest = new KubeRest(kc);

  let api: Managed | undefined;
  const startApiServer = async () => {
    api = startProcess(assets.kubeApiserver, apiArgs, apiLog);
    const proc = api;
    try {
      await waitFor('kube-apiserver /readyz', async () => {
        mustBeRunning(proc, 'kube-apiserver');
        mustBeRunning(etcd, 'etcd');
        const r = await rest.request('GET', '/readyz', { timeoutMs: 2000 }).then(() => true, () => false);
        return r;
      }, 90_000, 250);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- kube-apiserver log ---\n${tail(apiLog)}\n--- etcd log ---\n${tail(path.join(dir, 'etcd.log'))}`);
    }
  };
  const stopAll = async () => {
    rest.close();
    await stopProcess(api);
    await stopProcess(etcd);
    if (!process.env.XATTN_KEEP_CLUSTER) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await startApiServer();
  } catch (e) {
    await stopAll();
    throw e;
  }

  const installCrd = async (crd: Record<string, any>) => {
    const p = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    await rest.request('PATCH', `${p}/${crd.metadata.name}`, { body: crd, contentType: 'application/apply-patch+yaml', query: { fieldManager: 'xattn-tests', force: true } });
    await waitFor(`CRD ${crd.metadata.name} Established`, async () => {
      const c = await rest.get(`${p}/${crd.metadata.name}`);
      return c.status?.conditions?.some((x: any) => x.type === 'Established' && x.status === 'True');
    });
    // Discovery and the REST handler appear a moment after Established.
    const version = crd.spec.versions[0].name;
    await waitFor(`${crd.spec.names.plural} served`, () =>
      rest.get(`/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}`).then(() => true, (e) => (isStatus(e, 404) ? false : Promise.reject(e))),
    );
  };
  await installCrd(loadCrd());

  return {
    dir,
    server,
    kubeconfigPath,
    kc,
    rest,
    apiServerLog: apiLog,
    installCrd,
    stopApiServer: () => stopProcess(api),
    startApiServer,
    stop: stopAll,
  };
}
