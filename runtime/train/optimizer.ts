// AdamW (decoupled weight decay) on float32 master weights, with linear learning-rate warm-up and
// global gradient-norm clipping. The moments live on the engine beside the weights.
import type { Engine } from '../engine/engine.js';
import type { Nn } from '../model/nn.js';
import { ParamSet, type ParamSpec } from '../model/params.js';

export interface OptimizerConfig {
  peakLr: number;
  warmupSteps: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Gradients whose global L2 norm exceeds this are scaled down to it (0 disables). */
  maxGradNorm: number;
}

export const DEFAULT_OPTIMIZER: Omit<OptimizerConfig, 'peakLr' | 'warmupSteps'> = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1,
};

/** Learning rate of a 1-based step: linear warm-up from peak/warmup to peak, then constant. */
export function learningRate(cfg: Pick<OptimizerConfig, 'peakLr' | 'warmupSteps'>, step: number): number {
  if (cfg.warmupSteps <= 0 || step >= cfg.warmupSteps) return cfg.peakLr;
  return (cfg.peakLr * Math.max(1, step)) / cfg.warmupSteps;
}

export class AdamW {
  private constructor(
    readonly cfg: OptimizerConfig,
    readonly m: ParamSet,
    readonly v: ParamSet,
  ) {}

  static async create(engine: Engine, specs: ParamSpec[], cfg: OptimizerConfig): Promise<AdamW> {
    return new AdamW(cfg, await ParamSet.zerosLike(engine, specs), await ParamSet.zerosLike(engine, specs));
  }

  /**
   * One update with the (already all-reduced) gradients of a 1-based step. Returns the learning rate
   * and the gradient norm before clipping.
   */
  async step(nn: Nn, params: ParamSet, grads: ParamSet, step: number): Promise<{ lr: number; gradNorm: number }> {
    const gradNorm = Math.sqrt(await nn.sumSquares(grads.tensors));
    if (this.cfg.maxGradNorm > 0 && gradNorm > this.cfg.maxGradNorm) await nn.scale(grads.tensors, this.cfg.maxGradNorm / gradNorm);
    const lr = learningRate(this.cfg, step);
    const groups = params.tensors.map((param, i) => ({
      param,
      grad: grads.tensors[i]!,
      m: this.m.tensors[i]!,
      v: this.v.tensors[i]!,
      weightDecay: params.specs[i]!.decay ? this.cfg.weightDecay : 0,
    }));
    await nn.adamw(groups, { lr, beta1: this.cfg.beta1, beta2: this.cfg.beta2, eps: this.cfg.eps, step });
    return { lr, gradNorm };
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}
