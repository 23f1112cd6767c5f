// Metadata shared by every child object: namespace, labels and the controller owner reference
// that lets garbage collection delete the children with the job.
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND, type XAttnJob } from '../../crds/types.js';
import { commonLabels, namespaceOf } from '../names.js';

export function ownerReference(job: XAttnJob): V1OwnerReference {
  if (!job.metadata.uid) throw new Error(`XAttnJob ${job.metadata.name} has no uid; children need an owner reference`);
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: job.metadata.name,
    uid: job.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function childMeta(
  job: XAttnJob,
  name: string,
  labels: Record<string, string> = {},
  annotations?: Record<string, string>,
): V1ObjectMeta {
  const meta: V1ObjectMeta = {
    name,
    namespace: namespaceOf(job),
    labels: { ...commonLabels(job.metadata.name), ...labels },
    ownerReferences: [ownerReference(job)],
  };
  if (annotations && Object.keys(annotations).length) meta.annotations = annotations;
  return meta;
}
