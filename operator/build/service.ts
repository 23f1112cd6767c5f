// The headless Service that gives every worker pod a stable DNS name (<pod>.<job>.<ns>.svc).
import type { V1Service } from '@kubernetes/client-node';
import type { XAttnJob } from '../../crds/types.js';
import { LABEL_COMPONENT, LABEL_JOB, serviceName } from '../names.js';
import { childMeta } from './meta.js';

export function buildService(job: XAttnJob): V1Service {
  const name = job.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(job, serviceName(name)),
    spec: {
      clusterIP: 'None',
      // Ranks resolve each other before they are Ready: rendezvous is what makes them ready.
      publishNotReadyAddresses: true,
      selector: { [LABEL_JOB]: name, [LABEL_COMPONENT]: 'worker' },
      ports: [
        { name: 'rendezvous', port: job.spec.networking.masterPort, targetPort: job.spec.networking.masterPort, protocol: 'TCP' },
        { name: 'metrics', port: job.spec.metrics.port, targetPort: job.spec.metrics.port, protocol: 'TCP' },
      ],
    },
  };
}
