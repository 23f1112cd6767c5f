// `helm template` with default and non-default values: every object valid against the Kubernetes
// schemas, and the properties the chart promises (security, leader election, least-privilege RBAC,
// gated monitors, the dashboard ConfigMap, the CRD equal to crds/).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CHART, REPO, findObject, kinds, renderChart, type K8sObject } from './helm.js';
import { validateModel } from './models.js';

const topLevelCrd = () => parse(readFileSync(path.join(REPO, 'crds/xattn.io_xattnjobs.yaml'), 'utf8'));
const container = (objs: K8sObject[]) => findObject(objs, 'Deployment').spec.template.spec.containers[0];
const ruleFor = (role: K8sObject, group: string, resource: string) =>
  role.rules.filter((r: any) => r.apiGroups.includes(group) && r.resources.includes(resource));

describe('helm template, default values', () => {
  let objs: K8sObject[];
  it('renders the operator, its RBAC, metrics Service, dashboard and CRD, each valid', async () => {
    objs = await renderChart();
    expect(kinds(objs)).toEqual(
      ['ClusterRole', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'].sort(),
    );
    for (const o of objs) validateModel(o);
  });

  it('runs the operator hardened: non-root, read-only root, no escalation, RuntimeDefault seccomp', () => {
    const pod = findObject(objs, 'Deployment').spec.template.spec;
    const c = container(objs);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    // A read-only root still gets a writable /tmp for scratch files.
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
  });

  it('keeps leader election on, with the Lease covered by a Role in the release namespace', () => {
    const args: string[] = container(objs).args;
    expect(args[0]).toBe('operator');
    expect(args).not.toContain('--no-leader-elect');
    // The operator's Lease name (rbac.test.ts proves the running operator wins it under this Role).
    const role = findObject(objs, 'Role');
    expect(role.metadata.namespace).toBe('xattn-system');
    expect(role.rules).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['xattnjob-operator'], verbs: ['get', 'update'] });
    expect(role.rules).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] });
    // The operator finds its namespace from the ServiceAccount mount, or POD_NAMESPACE.
    expect(container(objs).env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
  });

  it('probes /healthz and /readyz on the port the operator serves them on', () => {
    const c = container(objs);
    const healthPort = c.ports.find((p: any) => p.name === 'health').containerPort;
    expect(c.args).toContain(`--health-address=:${healthPort}`);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
  });

  it('grants no PodGroup permissions while gang scheduling is off, and never secrets reads', () => {
    const role = findObject(objs, 'ClusterRole', 'xattn-operator');
    expect(role.rules.some((r: any) => r.resources.includes('podgroups'))).toBe(false);
    expect(ruleFor(role, '', 'secrets')).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
    for (const r of role.rules) expect(r.verbs).not.toContain('*');
  });

  it('serves metrics through a Service whose selector matches the operator pods', () => {
    const svc = findObject(objs, 'Service');
    const podLabels = findObject(objs, 'Deployment').spec.template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(podLabels[k]).toBe(v);
    const port = svc.spec.ports[0];
    expect(port).toMatchObject({ name: 'metrics', targetPort: 'metrics' });
    expect(container(objs).args).toContain(`--metrics-address=:${port.port}`);
  });

  it('renders no ServiceMonitor or PodMonitor (off by default)', () => {
    expect(objs.some((o) => o.apiVersion.startsWith('monitoring.coreos.com'))).toBe(false);
  });

  it('ships the committed dashboard JSON in a ConfigMap labelled grafana_dashboard: "1"', () => {
    const cm = findObject(objs, 'ConfigMap');
    expect(cm.metadata.labels!.grafana_dashboard).toBe('1');
    const committed = readFileSync(path.join(CHART, 'dashboards/xattn.json'), 'utf8');
    expect(JSON.parse(cm.data['xattn.json'])).toEqual(JSON.parse(committed));
  });

  it('templates the CRD equal to crds/, with the keep policy and the release labels added', () => {
    const crd = findObject(objs, 'CustomResourceDefinition');
    expect(crd.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
    expect(crd.metadata.labels!['app.kubernetes.io/managed-by']).toBe('Helm');
    const { labels: _l, annotations: _a, ...meta } = crd.metadata;
    expect({ ...crd, metadata: meta }).toEqual(topLevelCrd());
  });
});

describe('the chart copy of the CRD', () => {
  it('is byte for byte the top-level crds/ file (cp crds/xattn.io_xattnjobs.yaml charts/xattn-operator/files/crds/)', () => {
    const copy = readFileSync(path.join(CHART, 'files/crds/xattn.io_xattnjobs.yaml'), 'utf8');
    expect(copy).toBe(readFileSync(path.join(REPO, 'crds/xattn.io_xattnjobs.yaml'), 'utf8'));
  });
});

describe('helm template, every option on (full.yaml) on a cluster with the Prometheus Operator', () => {
  let objs: K8sObject[];
  it('renders valid objects, with monitors', async () => {
    objs = await renderChart({ values: ['full.yaml'], monitoringApi: true });
    for (const o of objs) validateModel(o);
    expect(kinds(objs)).toContain('ServiceMonitor');
    expect(kinds(objs)).toContain('PodMonitor');
  });

  it('scopes the operator to its namespace: a Role there instead of a ClusterRole', () => {
    expect(kinds(objs)).not.toContain('ClusterRole');
    const role = findObject(objs, 'Role', 'xattn-ha');
    expect(role.metadata.namespace).toBe('ml-team');
    const binding = findObject(objs, 'RoleBinding', 'xattn-ha');
    expect(binding.metadata.namespace).toBe('ml-team');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'xattn-controller', namespace: 'xattn-system' }]);
    expect(container(objs).args).toContain('--namespace=ml-team');
  });

  it('grants PodGroup permissions for both gang schedulers, and only the verbs the operator uses', () => {
    const role = findObject(objs, 'Role', 'xattn-ha');
    expect(ruleFor(role, 'scheduling.x-k8s.io', 'podgroups')).toEqual([{ apiGroups: ['scheduling.x-k8s.io'], resources: ['podgroups'], verbs: ['create', 'patch', 'delete'] }]);
    expect(ruleFor(role, 'scheduling.volcano.sh', 'podgroups')).toEqual([{ apiGroups: ['scheduling.volcano.sh'], resources: ['podgroups'], verbs: ['create', 'patch', 'delete'] }]);
  });

  it('pins the image by digest and passes the values through to the operator', () => {
    const c = container(objs);
    expect(c.image).toBe('registry.example.com/ml/xattn-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
    expect(c.args).toEqual(expect.arrayContaining(['--concurrency=16', '--log-level=debug', '--metrics-address=:9440', '--health-address=:9441']));
    expect(c.args.at(-1)).toBe('--log-level=warn'); // extraArgs come last, so they win
    const pod = findObject(objs, 'Deployment').spec.template.spec;
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }, { name: 'other-cred' }]);
    expect(findObject(objs, 'Deployment').spec.replicas).toBe(2);
  });

  it('points the PodMonitor at the worker pods the operator creates, copying the xattnjob label', () => {
    const pm = findObject(objs, 'PodMonitor');
    expect(pm.metadata.namespace).toBe('monitoring');
    expect(pm.metadata.labels!.release).toBe('kube-prometheus-stack');
    expect(pm.spec.namespaceSelector).toEqual({ matchNames: ['ml-team'] });
    expect(pm.spec.podTargetLabels).toEqual(['xattnjob']);
    expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics' });
  });

  it('keeps job namespaces on the operator series (honorLabels) and selects only the metrics Service', () => {
    const sm = findObject(objs, 'ServiceMonitor');
    const svc = findObject(objs, 'Service');
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', honorLabels: true });
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels![k]).toBe(v);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: ['xattn-system'] });
  });

  it('drops the keep policy when crds.keep is false and puts the dashboard in Grafana\'s namespace', () => {
    expect(findObject(objs, 'CustomResourceDefinition').metadata.annotations).toBeUndefined();
    const cm = findObject(objs, 'ConfigMap');
    expect(cm.metadata.namespace).toBe('grafana');
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'Training' });
  });
});

describe('helm template, options off (minimal.yaml)', () => {
  it('renders only the Deployment, using the given ServiceAccount and no leader election', async () => {
    const objs = await renderChart({ values: ['minimal.yaml'], monitoringApi: true });
    expect(kinds(objs)).toEqual(['Deployment']);
    for (const o of objs) validateModel(o);
    expect(findObject(objs, 'Deployment').spec.template.spec.serviceAccountName).toBe('platform-operators');
    expect(container(objs).args).toContain('--no-leader-elect');
    expect(objs.some((o) => o.kind === 'Role')).toBe(false);
  });
});

describe('monitors need the Prometheus Operator API', () => {
  it('are left out when the cluster does not serve monitoring.coreos.com/v1, even when enabled', async () => {
    const objs = await renderChart({ values: ['full.yaml'], monitoringApi: false });
    expect(objs.some((o) => o.apiVersion.startsWith('monitoring.coreos.com'))).toBe(false);
  });
});
