// Exit-code rules: whether a failed worker restarts the gang or fails the job at once.
import type { FailureRule } from '../../crds/types.js';
import type { PodView } from './pods.js';

export type FailureAction = 'Retry' | 'FailJob';

/** The first rule naming the exit code decides; no exit code (evicted, lost node) or no match retries. */
export function failureAction(rules: FailureRule[] | undefined, exitCode: number | undefined): FailureAction {
  if (exitCode === undefined) return 'Retry';
  const rule = rules?.find((r) => r.exitCodes.includes(exitCode));
  return rule?.action ?? 'Retry';
}

export function describeFailure(p: PodView): string {
  if (p.terminating && p.phase !== 'Failed') return `worker ${p.index} (pod ${p.name}) was deleted while the gang ran`;
  if (p.phase !== 'Failed') return `worker ${p.index} (pod ${p.name}) is missing`;
  const code = p.exitCode !== undefined ? ` with exit code ${p.exitCode}` : '';
  const why = p.reason ? ` (${p.reason})` : '';
  return `worker ${p.index} (pod ${p.name}) failed${code}${why}`;
}
