// Public entry points of the operator: the CLI's `xattn operator` and `xattn validate` call these.
export { runOperator, startOperator, loadKubeConfig, type OperatorOptions, type OperatorHandle, type LeaderElectionOptions } from './run.js';
export { validateManifest } from './validate.js';
export { desiredInfra, desiredPods } from './build/desired.js';
export { buildWorkerPod } from './build/pod.js';
export { planReconcile, type Plan, type PlanInput } from './status/plan.js';
export { FIELD_MANAGER } from './names.js';
