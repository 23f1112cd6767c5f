// kubernetes-models validation of rendered objects: each kind the chart may render, checked
// against the Kubernetes (and Prometheus Operator) OpenAPI schemas. A kind without a model fails.
import { PodMonitor, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { K8sObject } from './helm.js';

type Validating = { validate(): void };
const MODELS: Record<string, (o: any) => Validating> = {
  'v1/ServiceAccount': (o) => new ServiceAccount(o),
  'v1/Service': (o) => new Service(o),
  'v1/ConfigMap': (o) => new ConfigMap(o),
  'apps/v1/Deployment': (o) => new Deployment(o),
  'rbac.authorization.k8s.io/v1/ClusterRole': (o) => new ClusterRole(o),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': (o) => new ClusterRoleBinding(o),
  'rbac.authorization.k8s.io/v1/Role': (o) => new Role(o),
  'rbac.authorization.k8s.io/v1/RoleBinding': (o) => new RoleBinding(o),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': (o) => new CustomResourceDefinition(o),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => new ServiceMonitor(o),
  'monitoring.coreos.com/v1/PodMonitor': (o) => new PodMonitor(o),
};

/** Throws naming the object and the first schema violation. */
export function validateModel(obj: K8sObject): void {
  const make = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!make) throw new Error(`no kubernetes-models model for ${obj.apiVersion} ${obj.kind} (${obj.metadata?.name}): add one to test/charts/models.ts`);
  try {
    make(obj).validate();
  } catch (e) {
    throw new Error(`${obj.kind} ${obj.metadata?.name} is invalid: ${(e as Error).message}`);
  }
}
