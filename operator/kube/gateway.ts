// The writes (and the one read) the reconciler makes, behind a narrow interface so reconcile
// logic can be exercised against an in-memory fake. Conflicts and "already there / already gone"
// answers are outcomes, not errors.
import { randomBytes } from 'node:crypto';
import { API_VERSION, KIND, type XAttnJob, type XAttnJobStatus } from '../../crds/types.js';
import { FIELD_MANAGER, namespaceOf } from '../names.js';
import type { JobEvent, PodRef } from '../status/plan.js';
import { isStatus, type KubeRest } from './rest.js';
import { EVENTS, JOBS, PODS, resourceFor, resourcePath } from './resources.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface KubeGateway {
  getJob(namespace: string, name: string): Promise<XAttnJob | undefined>;
  /** Writes status with the job's resourceVersion as precondition; 'conflict' when it moved on. */
  patchJobStatus(job: XAttnJob, status: XAttnJobStatus): Promise<'ok' | 'conflict' | 'gone'>;
  /** Server-side apply with the operator's field manager, taking ownership of conflicting fields. */
  apply(obj: KubeObject): Promise<void>;
  create(obj: KubeObject): Promise<'created' | 'exists'>;
  /** Deletes a pod only if it is still the same pod (uid precondition). */
  deletePod(namespace: string, pod: PodRef): Promise<'deleted' | 'gone'>;
  deleteObject(apiVersion: string, kind: string, namespace: string, name: string): Promise<void>;
  deleteJob(job: XAttnJob): Promise<void>;
  recordEvent(job: XAttnJob, event: JobEvent): Promise<void>;
}

/** Merge-patch body that replaces `status` as a whole: keys that disappeared are sent as null. */
export function statusPatch(job: XAttnJob, status: XAttnJobStatus): Record<string, unknown> {
  const body: Record<string, unknown> = { ...status };
  for (const k of Object.keys(job.status ?? {})) if (!(k in status) || (status as any)[k] === undefined) body[k] = null;
  return { metadata: { resourceVersion: job.metadata.resourceVersion }, status: body };
}

export class RestGateway implements KubeGateway {
  constructor(
    private readonly rest: KubeRest,
    private readonly identity: string,
  ) {}

  async getJob(namespace: string, name: string): Promise<XAttnJob | undefined> {
    try {
      return await this.rest.get<XAttnJob>(resourcePath(JOBS, namespace, name));
    } catch (e) {
      if (isStatus(e, 404)) return undefined;
      throw e;
    }
  }

  async patchJobStatus(job: XAttnJob, status: XAttnJobStatus): Promise<'ok' | 'conflict' | 'gone'> {
    try {
      await this.rest.request('PATCH', resourcePath(JOBS, namespaceOf(job), job.metadata.name, 'status'), {
        body: statusPatch(job, status),
        contentType: 'application/merge-patch+json',
        query: { fieldManager: FIELD_MANAGER },
      });
      return 'ok';
    } catch (e) {
      if (isStatus(e, 409)) return 'conflict';
      if (isStatus(e, 404)) return 'gone';
      throw e;
    }
  }

  async apply(obj: KubeObject): Promise<void> {
    const r = resourceFor(obj.apiVersion!, obj.kind!);
    await this.rest.request('PATCH', resourcePath(r, obj.metadata!.namespace, obj.metadata!.name), {
      body: obj,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: true },
    });
  }

  async create(obj: KubeObject): Promise<'created' | 'exists'> {
    const r = resourceFor(obj.apiVersion!, obj.kind!);
    try {
      await this.rest.request('POST', resourcePath(r, obj.metadata!.namespace), { body: obj, query: { fieldManager: FIELD_MANAGER } });
      return 'created';
    } catch (e) {
      if (isStatus(e, 409)) return 'exists';
      throw e;
    }
  }

  async deletePod(namespace: string, pod: PodRef): Promise<'deleted' | 'gone'> {
    try {
      await this.rest.request('DELETE', resourcePath(PODS, namespace, pod.name), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: pod.uid }, propagationPolicy: 'Background' },
      });
      return 'deleted';
    } catch (e) {
      // 409: the uid precondition failed, so the name now belongs to a newer pod: leave it.
      if (isStatus(e, 404, 409)) return 'gone';
      throw e;
    }
  }

  async deleteObject(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    try {
      await this.rest.request('DELETE', resourcePath(resourceFor(apiVersion, kind), namespace, name));
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
    }
  }

  async deleteJob(job: XAttnJob): Promise<void> {
    try {
      await this.rest.request('DELETE', resourcePath(JOBS, namespaceOf(job), job.metadata.name), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: job.metadata.uid }, propagationPolicy: 'Background' },
      });
    } catch (e) {
      if (!isStatus(e, 404, 409)) throw e;
    }
  }

  async recordEvent(job: XAttnJob, ev: JobEvent): Promise<void> {
    const now = new Date().toISOString();
    const ns = namespaceOf(job);
    await this.rest.request('POST', resourcePath(EVENTS, ns), {
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${job.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name: job.metadata.name, namespace: ns, uid: job.metadata.uid },
        type: ev.type,
        reason: ev.reason,
        message: ev.message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        reportingInstance: this.identity,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}
