// Finds kube-apiserver and etcd the envtest way: $KUBEBUILDER_ASSETS, else the cache that
// scripts/kube-assets.sh fills. Missing binaries are an error, never a silent skip.
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface KubeAssets {
  dir: string;
  kubeApiserver: string;
  etcd: string;
}

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export function findKubeAssets(env: NodeJS.ProcessEnv = process.env): KubeAssets {
  const cacheRoot = env.XATTN_KUBE_ASSETS_CACHE ?? path.join(os.homedir(), '.cache', 'xattn', 'kube-assets');
  const candidates = [env.KUBEBUILDER_ASSETS, path.join(cacheRoot, 'current')].filter((d): d is string => Boolean(d));
  for (const dir of candidates) {
    const kubeApiserver = path.join(dir, 'kube-apiserver');
    const etcd = path.join(dir, 'etcd');
    if (executable(kubeApiserver) && executable(etcd)) return { dir, kubeApiserver, etcd };
  }
  throw new Error(
    [
      '',
      '================================================================================',
      ' CLUSTER TESTS CANNOT RUN: no kube-apiserver and etcd binaries were found.',
      ` Looked in: ${candidates.join(', ')}`,
      ' Build them once (about 10 minutes on 2 cores) with:  bash scripts/kube-assets.sh',
      ' or point KUBEBUILDER_ASSETS at a folder holding both (e.g. from setup-envtest).',
      '================================================================================',
    ].join('\n'),
  );
}
