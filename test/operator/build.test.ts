import { parse } from 'yaml';
import { ConfigMap, Pod, Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { validateXAttnJob } from '../../crds/validate.js';
import { buildConfigMap, buildTokenSecret } from '../../operator/build/config.js';
import { desiredInfra, desiredPods } from '../../operator/build/desired.js';
import { buildWorkerPod } from '../../operator/build/pod.js';
import { scaleQuantity } from '../../operator/build/quantity.js';
import { buildService } from '../../operator/build/service.js';
import { makeJob } from './fixtures.js';

const envOf = (p: any) => Object.fromEntries(p.spec.containers[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom]));

describe('worker pod env contract', () => {
  it('gives CPU worker i RANK = NODE_RANK = i and the stable DNS names', () => {
    const job = makeJob({ workers: 3 });
    const env = envOf(buildWorkerPod(job, 2, 0));
    expect(env).toEqual({
      MASTER_ADDR: 'demo-worker-0.demo.team-a.svc',
      MASTER_PORT: '29500',
      WORLD_SIZE: '3',
      RANK: '2',
      LOCAL_RANK: '0',
      LOCAL_WORLD_SIZE: '1',
      NODE_RANK: '2',
      XATTN_JOB_NAME: 'demo',
      XATTN_CONFIG: '/etc/xattn/job.yaml',
      XATTN_METRICS_PORT: '9400',
      XATTN_POD_HOSTNAME: 'demo-worker-2.demo.team-a.svc',
      XATTN_JOB_TOKEN: { secretKeyRef: { name: 'demo-token', key: 'token' } },
    });
  });

  it('gives a pod with g GPUs LOCAL_WORLD_SIZE = g and its first rank i*g; world size counts GPUs', () => {
    const job = makeJob({ workers: 2, gpusPerWorker: 8, checkpoint: { claimName: 'ckpt' }, networking: { masterPort: 23456 }, metrics: { port: 9100 } });
    const env = envOf(buildWorkerPod(job, 1, 0));
    expect(env).toMatchObject({ WORLD_SIZE: '16', RANK: '8', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '8', NODE_RANK: '1', MASTER_PORT: '23456', XATTN_METRICS_PORT: '9100', XATTN_CHECKPOINT_DIR: '/checkpoints' });
  });

  it('adds NCCL settings, sorted, without touching the contract', () => {
    const job = makeJob({ networking: { socketIfname: '^lo,docker', ncclEnv: { NCCL_IB_HCA: 'mlx5', NCCL_DEBUG: 'INFO' } } });
    const names = buildWorkerPod(job, 0, 0).spec!.containers[0].env!.map((e) => e.name);
    expect(names.slice(-3)).toEqual(['NCCL_DEBUG', 'NCCL_IB_HCA', 'NCCL_SOCKET_IFNAME']);
    expect(envOf(buildWorkerPod(job, 0, 0)).NCCL_SOCKET_IFNAME).toBe('^lo,docker');
  });
});

describe('worker pod', () => {
  it('is named, labelled and wired for the headless Service and gang restarts', () => {
    const p = buildWorkerPod(makeJob(), 1, 4);
    expect(p.metadata!.name).toBe('demo-worker-1');
    expect(p.metadata!.labels).toMatchObject({ xattnjob: 'demo', 'xattn.io/node-rank': '1', 'xattn.io/restart-attempt': '4', 'app.kubernetes.io/managed-by': 'xattn-operator' });
    expect(p.metadata!.ownerReferences).toEqual([{ apiVersion: 'xattn.io/v1alpha1', kind: 'XAttnJob', name: 'demo', uid: 'uid-1', controller: true, blockOwnerDeletion: true }]);
    expect(p.spec).toMatchObject({ hostname: 'demo-worker-1', subdomain: 'demo', restartPolicy: 'Never' });
    expect(p.spec!.containers[0].command).toEqual(['xattn', 'worker']);
    expect(p.spec!.containers[0].ports).toContainEqual({ name: 'metrics', containerPort: 9400, protocol: 'TCP' });
    expect(p.metadata!.annotations).toMatchObject({ 'prometheus.io/port': '9400', 'xattn.io/world-size': '2' });
  });

  it('requests GPUs as equal requests and limits, keeping the user resources', () => {
    const p = buildWorkerPod(makeJob({ gpusPerWorker: 4, resources: { requests: { cpu: 8 }, limits: { memory: '64Gi' } } }), 0, 0);
    expect(p.spec!.containers[0].resources).toEqual({ requests: { cpu: '8', 'nvidia.com/gpu': '4' }, limits: { memory: '64Gi', 'nvidia.com/gpu': '4' } });
    expect(buildWorkerPod(makeJob(), 0, 0).spec!.containers[0].resources).toEqual({});
  });

  it('mounts a memory-backed /dev/shm of the asked size, the config, and the checkpoint claim only when set', () => {
    const mountsOf = (p: any) => Object.fromEntries(p.spec.containers[0].volumeMounts.map((m: any) => [m.mountPath, p.spec.volumes.find((v: any) => v.name === m.name)]));
    const a = mountsOf(buildWorkerPod(makeJob({ networking: { shmSize: '16Gi' }, checkpoint: { claimName: 'c' } }), 0, 0));
    expect(a['/dev/shm'].emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Gi' });
    expect(a['/etc/xattn'].configMap).toEqual({ name: 'demo-config' });
    expect(a['/checkpoints'].persistentVolumeClaim).toEqual({ claimName: 'c' });
    expect(Object.keys(mountsOf(buildWorkerPod(makeJob(), 0, 0))).sort()).toEqual(['/dev/shm', '/etc/xattn']);
  });

  it('uses the host network with the matching DNS policy only when asked', () => {
    expect(buildWorkerPod(makeJob({ networking: { hostNetwork: true } }), 0, 0).spec).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' });
    expect(buildWorkerPod(makeJob(), 0, 0).spec!.hostNetwork).toBeUndefined();
  });

  it('passes scheduling constraints through', () => {
    const scheduling = {
      schedulerName: 'custom', priorityClassName: 'high', nodeSelector: { gpu: 'h100' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } },
    };
    const s = buildWorkerPod(makeJob({ scheduling, imagePullSecrets: ['regcred'] }), 0, 0).spec!;
    expect(s).toMatchObject({ schedulerName: 'custom', priorityClassName: 'high', nodeSelector: { gpu: 'h100' }, tolerations: scheduling.tolerations, affinity: scheduling.affinity, imagePullSecrets: [{ name: 'regcred' }] });
  });

  it.each([
    ['podgroup', { 'scheduling.x-k8s.io/pod-group': 'demo' }, {}, undefined],
    ['volcano', {}, { 'scheduling.k8s.io/group-name': 'demo' }, 'volcano'],
    ['kueue', { 'kueue.x-k8s.io/queue-name': 'q', 'kueue.x-k8s.io/pod-group-name': 'demo-3' }, { 'kueue.x-k8s.io/pod-group-total-count': '2' }, undefined],
  ])('marks pods for the %s gang', (gang, labels, annotations, scheduler) => {
    const p = buildWorkerPod(makeJob({ scheduling: { gang, queueName: 'q' } }), 0, 3);
    expect(p.metadata!.labels).toMatchObject(labels);
    expect(p.metadata!.annotations).toMatchObject(annotations);
    expect(p.spec!.schedulerName).toBe(scheduler);
  });

  it('validates against the Kubernetes schemas in every configuration', () => {
    const variants = [
      makeJob(),
      makeJob({ workers: 4, gpusPerWorker: 8, networking: { hostNetwork: true, ncclEnv: { NCCL_DEBUG: 'WARN' } }, checkpoint: { claimName: 'x' } }),
      makeJob({ scheduling: { gang: 'volcano', queueName: 'q', tolerations: [{ key: 'a', operator: 'Exists' }] }, resources: { requests: { cpu: '500m' } } }),
    ];
    for (const job of variants) {
      for (const p of desiredPods(job, 0)) expect(() => new Pod(p as any).validate()).not.toThrow();
      const infra = desiredInfra(job);
      expect(() => new Service(infra.service as any).validate()).not.toThrow();
      expect(() => new ConfigMap(infra.configMap as any).validate()).not.toThrow();
      expect(() => new Secret(buildTokenSecret(job, 'a'.repeat(64)) as any).validate()).not.toThrow();
    }
  });
});

describe('infrastructure', () => {
  it('makes a headless Service that publishes not-ready pods and selects only this job’s workers', () => {
    const s = buildService(makeJob());
    expect(s.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector: { xattnjob: 'demo', 'app.kubernetes.io/component': 'worker' } });
    expect(s.spec!.ports!.map((p) => [p.name, p.port])).toEqual([['rendezvous', 29500], ['metrics', 9400]]);
  });

  it('stores the defaulted manifest in the ConfigMap in a form the worker validates back', () => {
    const job = makeJob({ workers: 3, model: { preset: 'tiny' } });
    const doc = parse(buildConfigMap(job).data!['job.yaml']);
    expect(doc.metadata).toEqual({ name: 'demo', namespace: 'team-a' });
    expect(validateXAttnJob(doc).spec).toEqual(job.spec);
  });

  it('refuses a short job token', () => {
    expect(() => buildTokenSecret(makeJob(), 'short')).toThrow(/at least 32/);
  });

  it('gives a PodGroup the whole gang and its total requests', () => {
    const pg = desiredInfra(makeJob({ workers: 3, gpusPerWorker: 8, resources: { requests: { cpu: '1500m', memory: '1.5Gi' } }, scheduling: { gang: 'podgroup', scheduleTimeoutSeconds: 60 } })).podGroup!;
    expect(pg.apiVersion).toBe('scheduling.x-k8s.io/v1alpha1');
    expect(pg.spec).toEqual({ minMember: 3, scheduleTimeoutSeconds: 60, minResources: { cpu: '4500m', memory: '4.5Gi', 'nvidia.com/gpu': '24' } });
    const vc = desiredInfra(makeJob({ scheduling: { gang: 'volcano', queueName: 'research' } })).podGroup!;
    expect(vc.apiVersion).toBe('scheduling.volcano.sh/v1beta1');
    expect(vc.spec).toMatchObject({ minMember: 2, queue: 'research' });
    expect(desiredInfra(makeJob()).podGroup).toBeUndefined();
    expect(desiredInfra(makeJob({ scheduling: { gang: 'kueue', queueName: 'q' } })).podGroup).toBeUndefined();
  });
});

describe('scaleQuantity', () => {
  it.each([
    ['8Gi', 2, '16Gi'],
    ['500m', 3, '1500m'],
    [4, 8, '32'],
    ['0.1', 3, '0.3'],
    ['1.25G', 4, '5G'],
  ])('%s × %d = %s', (q, f, want) => expect(scaleQuantity(q as string | number, f as number)).toBe(want));

  it('rejects what is not a quantity', () => expect(() => scaleQuantity('lots', 2)).toThrow(/not a Kubernetes quantity/));
});
