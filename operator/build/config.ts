// The job's ConfigMap (the manifest itself, mounted as XATTN_CONFIG) and its Secret (the random
// token that keeps other pods out of the job's rendezvous and transport).
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { API_VERSION, KIND, type XAttnJob } from '../../crds/types.js';
import { CONFIG_KEY, TOKEN_KEY, configMapName, namespaceOf, secretName } from '../names.js';
import { childMeta } from './meta.js';

/** The manifest as the worker reads it: identity and the defaulted spec, no cluster bookkeeping. */
export function jobConfigYaml(job: XAttnJob): string {
  const doc = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: job.metadata.name, namespace: namespaceOf(job) },
    spec: job.spec,
  };
  return stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
}

export function buildConfigMap(job: XAttnJob): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(job, configMapName(job.metadata.name)),
    data: { [CONFIG_KEY]: jobConfigYaml(job) },
  };
}

/** token: random, made by the caller (created once and never re-applied, so it never rotates under a running gang). */
export function buildTokenSecret(job: XAttnJob, token: string): V1Secret {
  if (token.length < 32) throw new Error('job token must be at least 32 characters');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(job, secretName(job.metadata.name)),
    type: 'Opaque',
    stringData: { [TOKEN_KEY]: token },
  };
}
