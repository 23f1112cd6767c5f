// The LeaseStore of leader election over coordination.k8s.io/v1 Leases.
import type { LeaseRecord, LeaseStore } from '../controller/leader.js';
import { isStatus, type KubeRest } from './rest.js';
import { LEASES, resourcePath } from './resources.js';

export class RestLeaseStore implements LeaseStore {
  constructor(
    private readonly rest: KubeRest,
    private readonly namespace: string,
    private readonly name: string,
    /** Each call must end well within the renew deadline. */
    private readonly timeoutMs: number,
  ) {}

  async get(): Promise<{ record: LeaseRecord; resourceVersion: string } | undefined> {
    try {
      const lease = await this.rest.get(resourcePath(LEASES, this.namespace, this.name), { timeoutMs: this.timeoutMs });
      return { record: lease.spec ?? {}, resourceVersion: lease.metadata.resourceVersion };
    } catch (e) {
      if (isStatus(e, 404)) return undefined;
      throw e;
    }
  }

  async create(record: LeaseRecord): Promise<'ok' | 'conflict'> {
    try {
      await this.rest.request('POST', resourcePath(LEASES, this.namespace), {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace }, spec: record },
        timeoutMs: this.timeoutMs,
      });
      return 'ok';
    } catch (e) {
      if (isStatus(e, 409)) return 'conflict';
      throw e;
    }
  }

  async update(record: LeaseRecord, resourceVersion: string): Promise<'ok' | 'conflict'> {
    try {
      await this.rest.request('PUT', resourcePath(LEASES, this.namespace, this.name), {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace, resourceVersion },
          spec: record,
        },
        timeoutMs: this.timeoutMs,
      });
      return 'ok';
    } catch (e) {
      if (isStatus(e, 409)) return 'conflict';
      throw e;
    }
  }
}
