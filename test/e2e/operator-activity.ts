// Real work for the operator in the test cluster, so that each of its dashboard series has data:
// a job that restarts its gang once and then succeeds, a job that fails, and a job whose pods a
// ResourceQuota refuses (reconcile errors). The test plays the kubelet, as in test/cluster.
import type { KubeRest } from '../../operator/kube/rest.js';
import { createJob, createNamespace, jobManifest, setAllPods, setPodPhase, waitForJob, waitForPhase, waitForPods } from '../cluster/harness/kube.js';

export async function restartThenSucceed(rest: KubeRest, ns: string, name: string): Promise<void> {
  await createJob(rest, ns, jobManifest(name, { workers: 2 }));
  const first = await waitForPods(rest, ns, name, 2, 0);
  await setAllPods(rest, ns, first, { phase: 'Running' });
  await waitForPhase(rest, ns, name, 'Running');
  await setPodPhase(rest, ns, first[1].metadata.name, { phase: 'Failed', exitCode: 137, reason: 'OOMKilled' });
  const second = await waitForPods(rest, ns, name, 2, 1);
  await waitForJob(rest, ns, name, 'one gang restart', (j) => j.status?.restarts === 1);
  await setAllPods(rest, ns, second, { phase: 'Running' });
  await setAllPods(rest, ns, second, { phase: 'Succeeded' });
  await waitForPhase(rest, ns, name, 'Succeeded');
}

export async function failOnce(rest: KubeRest, ns: string, name: string): Promise<void> {
  // Exit code 2 (bad arguments) is not retryable: the job fails at once.
  await createJob(rest, ns, jobManifest(name, { workers: 2, failurePolicy: { rules: [{ action: 'FailJob', exitCodes: [2] }] } }));
  const pods = await waitForPods(rest, ns, name, 2);
  await setAllPods(rest, ns, pods, { phase: 'Running' });
  await setPodPhase(rest, ns, pods[0].metadata.name, { phase: 'Failed', exitCode: 2 });
  await waitForPhase(rest, ns, name, 'Failed');
}

/** A job in a namespace whose quota admits no pods: every reconcile that creates pods fails. */
export async function blockedByQuota(rest: KubeRest, name: string): Promise<string> {
  const ns = await createNamespace(rest, 'e2e-quota');
  await rest.request('POST', `/api/v1/namespaces/${ns}/resourcequotas`, {
    body: { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'no-pods' }, spec: { hard: { pods: '0' } } },
  });
  // No controller-manager computes quota usage here: write the status it would.
  await rest.request('PATCH', `/api/v1/namespaces/${ns}/resourcequotas/no-pods/status`, {
    body: { status: { hard: { pods: '0' }, used: { pods: '0' } } },
    contentType: 'application/merge-patch+json',
  });
  await createJob(rest, ns, jobManifest(name, { workers: 1 }));
  return ns;
}
