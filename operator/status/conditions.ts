// metav1.Condition bookkeeping: one entry per type, lastTransitionTime moves only when the status
// flips, reasons are CamelCase and never empty.
import type { Condition, ConditionType } from '../../crds/types.js';

export interface ConditionUpdate {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function findCondition(list: Condition[] | undefined, type: ConditionType): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export const isTrue = (list: Condition[] | undefined, type: ConditionType): boolean => findCondition(list, type)?.status === 'True';

/** Returns a new list with `u` set; other types are kept as they are, in their order. */
export function setCondition(list: Condition[] | undefined, u: ConditionUpdate, now: string, generation?: number): Condition[] {
  const current = findCondition(list, u.type);
  const next: Condition = {
    type: u.type,
    status: u.status,
    reason: u.reason,
    message: u.message,
    lastTransitionTime: current && current.status === u.status ? current.lastTransitionTime : now,
  };
  if (generation !== undefined) next.observedGeneration = generation;
  if (current) return list!.map((c) => (c.type === u.type ? next : c));
  return [...(list ?? []), next];
}

/** Sets a condition only if it is present already (so a never-suspended job shows no Suspended=False). */
export function setIfPresent(list: Condition[] | undefined, u: ConditionUpdate, now: string, generation?: number): Condition[] | undefined {
  return findCondition(list, u.type) ? setCondition(list, u, now, generation) : list;
}
