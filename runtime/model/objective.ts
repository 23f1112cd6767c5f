// The training objective: mean squared error of the stack's output against a target, and its gradients.
import type { Tensor } from '../engine/engine.js';
import type { ModelContext } from './context.js';
import type { ParamSet } from './params.js';
import { stackBackward, stackForward, type StackBackwardOptions } from './stack.js';

export interface LossAndGrads {
  /** Sum of squared errors over this rank's tokens (divide by `normalizer` for the loss). */
  sum: number;
  dx: Tensor;
  /** With visualGrad only. */
  dy?: Tensor;
}

/**
 * Loss = sum((stack(x, y) - target)²) / normalizer, where normalizer counts every element of the global
 * batch: each rank's gradients are then its share of the global gradient, and summing them over ranks
 * gives exactly the single-process gradient. Weight gradients are written into `grads`.
 */
export async function lossAndGrads(
  c: ModelContext,
  params: ParamSet,
  grads: ParamSet,
  batch: { x: Tensor; y: Tensor; target: Tensor },
  normalizer: number,
  o: StackBackwardOptions = {},
): Promise<LossAndGrads> {
  const f = await stackForward(c, params, batch.x, batch.y);
  const { sum, grad } = await c.profile.time('other', c.nn.squaredError(f.out, batch.target, 1 / normalizer));
  c.ledger.track(grad);
  c.ledger.free(f.out);
  const { dx, dy } = await stackBackward(c, params, grads, f.saved, batch.y, grad, o);
  return { sum, dx, ...(dy ? { dy } : {}) };
}
