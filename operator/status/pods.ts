// Observed worker pods, reduced to what decisions need. Input is plain API JSON (timestamps are
// strings), as the informers deliver it.
import { LABEL_ATTEMPT, LABEL_NODE_RANK, WORKER_CONTAINER } from '../names.js';

export interface PodView {
  name: string;
  uid: string;
  /** Node rank from the label, or -1 when missing or malformed. */
  index: number;
  /** Restart attempt the pod belongs to, or -1 when missing or malformed. */
  attempt: number;
  /** Owner uid of the controlling XAttnJob reference. */
  ownerUid?: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  ready: boolean;
  terminating: boolean;
  /** Exit code of the worker container once it terminated. */
  exitCode?: number;
  /** Why the pod or its container ended (Error, OOMKilled, Evicted, DeadlineExceeded, ...). */
  reason?: string;
}

const toInt = (v: unknown): number => (typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : -1);

export function podView(pod: any): PodView {
  const meta = pod?.metadata ?? {};
  const status = pod?.status ?? {};
  const owner = (meta.ownerReferences ?? []).find((r: any) => r?.controller);
  const statuses: any[] = status.containerStatuses ?? [];
  const worker = statuses.find((c) => c?.name === WORKER_CONTAINER) ?? statuses[0];
  const terminated = worker?.state?.terminated ?? worker?.lastState?.terminated;
  const readyCond = (status.conditions ?? []).find((c: any) => c?.type === 'Ready');
  const phase = ['Pending', 'Running', 'Succeeded', 'Failed'].includes(status.phase) ? status.phase : status.phase ? 'Unknown' : 'Pending';
  const view: PodView = {
    name: String(meta.name ?? ''),
    uid: String(meta.uid ?? ''),
    index: toInt(meta.labels?.[LABEL_NODE_RANK]),
    attempt: toInt(meta.labels?.[LABEL_ATTEMPT]),
    phase,
    ready: readyCond?.status === 'True',
    terminating: Boolean(meta.deletionTimestamp),
  };
  if (owner?.uid) view.ownerUid = owner.uid;
  if (typeof terminated?.exitCode === 'number') view.exitCode = terminated.exitCode;
  const reason = terminated?.reason ?? status.reason;
  if (reason) view.reason = String(reason);
  return view;
}

export interface PodCounts {
  existing: number;
  running: number;
  ready: number;
  succeeded: number;
  failed: number;
}

export function countPods(pods: PodView[]): PodCounts {
  const c: PodCounts = { existing: pods.length, running: 0, ready: 0, succeeded: 0, failed: 0 };
  for (const p of pods) {
    if (p.phase === 'Running') c.running++;
    if (p.phase === 'Succeeded') c.succeeded++;
    if (p.phase === 'Failed') c.failed++;
    if (p.ready && p.phase === 'Running') c.ready++;
  }
  return c;
}

export const isFinished = (p: PodView): boolean => p.phase === 'Succeeded' || p.phase === 'Failed';
