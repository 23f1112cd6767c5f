// The stack of cross-attention layers over one shared visual input y.
import type { Tensor } from '../engine/engine.js';
import type { ModelContext } from './context.js';
import { freeSaved, layerBackward, layerForward, type LayerSaved } from './layer.js';
import type { ParamSet } from './params.js';

export interface StackForward {
  out: Tensor;
  saved: LayerSaved[];
}

/** Forward through every layer; x stays the caller's, `out` and `saved` are the caller's to pass on. */
export async function stackForward(c: ModelContext, params: ParamSet, x: Tensor, y: Tensor): Promise<StackForward> {
  const saved: LayerSaved[] = [];
  let h = x;
  for (let l = 0; l < params.layers; l++) {
    const r = await layerForward(c, params.layer(l), h, y);
    saved.push(r.saved);
    h = r.out;
  }
  return { out: h, saved };
}

export interface StackBackwardOptions {
  /** Called once a layer's weight gradients are final (to start their all-reduce). */
  onLayerGrads?: (layer: number) => Promise<void>;
  /** Also the gradient of the visual input y (default: not computed). */
  visualGrad?: boolean;
}

/** Forward keeping nothing (the teacher's targets). */
export async function stackInference(c: ModelContext, params: ParamSet, x: Tensor, y: Tensor): Promise<Tensor> {
  let h = x;
  for (let l = 0; l < params.layers; l++) {
    const r = await layerForward(c, params.layer(l), h, y);
    freeSaved(c, r.saved);
    if (h !== x) c.ledger.free(h);
    h = r.out;
  }
  return h;
}

/**
 * Backward through every layer, last first. dOut is consumed (it becomes dx); weight gradients are
 * written into `grads` (whatever they held); with `visualGrad`, dy (gradient of the shared y, summed over layers) is a new
 * tensor. Training leaves it out: y is data there, nothing upstream takes dy, and it would cost two
 * GEMMs a layer with a float32 [visual tokens, visualHidden] accumulator. Frees `saved` except the
 * stack's input x.
 */
export async function stackBackward(
  c: ModelContext,
  params: ParamSet,
  grads: ParamSet,
  saved: LayerSaved[],
  y: Tensor,
  dOut: Tensor,
  o: StackBackwardOptions = {},
): Promise<{ dx: Tensor; dy?: Tensor }> {
  const { onLayerGrads, visualGrad = false } = o;
  const dy = visualGrad ? c.ledger.track(await c.engine.empty([c.call.dims.batch * c.lkv, c.shape.visualHidden], 'float32')) : undefined;
  let d = dOut;
  for (let l = params.layers - 1; l >= 0; l--) {
    d = await layerBackward(c, params.layer(l), grads.layer(l), saved[l]!, y, d, dy);
    await onLayerGrads?.(l);
    if (l > 0) c.ledger.free(saved[l]!.x);
  }
  return { dx: d, ...(dy ? { dy } : {}) };
}
