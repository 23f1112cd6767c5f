// Entry of an operator child process in the cluster suite (the real CLI wires runOperator the
// same way). Prints its probe URLs as one JSON line so the test can find them.
import { startOperator } from '../../../operator/run.js';
import { jsonLogger } from '../../../operator/log.js';
import { FAST_LEASE } from './operator.js';

const handle = await startOperator({
  kubeconfig: process.env.XATTN_TEST_KUBECONFIG!,
  metricsAddress: '127.0.0.1:0',
  healthAddress: '127.0.0.1:0',
  leaderElection: { namespace: 'default', name: process.env.XATTN_TEST_LEASE!, identity: process.env.XATTN_TEST_IDENTITY!, ...FAST_LEASE },
  logger: jsonLogger((process.env.XATTN_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'info', (l) => process.stderr.write(l + '\n'), { identity: process.env.XATTN_TEST_IDENTITY }),
  handleSignals: true,
});
process.stdout.write(JSON.stringify({ metricsUrl: handle.metricsUrl, healthUrl: handle.healthUrl }) + '\n');
try {
  await handle.done;
  process.exit(0);
} catch {
  process.exit(2);
}
