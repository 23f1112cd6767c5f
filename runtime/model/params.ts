// The parameters of the cross-attention stack: names, shapes, deterministic initialisation, and the
// per-layer view the layer code uses. Weights use the PyTorch Linear layout [out, in].
import type { Engine, Tensor } from '../engine/engine.js';
import { randn } from '../worker/random.js';
import type { ModelShape } from './presets.js';
import { mixSeed } from './seeds.js';

export const LAYER_PARAM_NAMES = ['normIn', 'wq', 'qNorm', 'wk', 'kNorm', 'wv', 'wo', 'gate'] as const;
export type LayerParamName = (typeof LAYER_PARAM_NAMES)[number];
export type LayerParams = Record<LayerParamName, Tensor>;

export interface ParamSpec {
  name: string;
  layer: number;
  role: LayerParamName;
  shape: number[];
  /** Weight decay applies to projection matrices only (not norms or gates). */
  decay: boolean;
}

function roleShape(role: LayerParamName, m: ModelShape): number[] {
  const q = m.heads * m.headDim, kv = m.kvHeads * m.headDim;
  switch (role) {
    case 'normIn': return [m.textHidden];
    case 'wq': return [q, m.textHidden];
    case 'qNorm': return [m.headDim];
    case 'wk': return [kv, m.visualHidden];
    case 'kNorm': return [m.headDim];
    case 'wv': return [kv, m.visualHidden];
    case 'wo': return [m.textHidden, q];
    case 'gate': return [1];
  }
}

export function paramSpecs(m: ModelShape): ParamSpec[] {
  const out: ParamSpec[] = [];
  for (let layer = 0; layer < m.layers; layer++)
    for (const role of LAYER_PARAM_NAMES)
      out.push({ name: `layers.${layer}.${role}`, layer, role, shape: roleShape(role, m), decay: role.startsWith('w') });
  return out;
}

export const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export interface InitOptions {
  seed: number;
  /** Initial value of every tanh gate (Llama initialises them to 0; tests use non-zero gates). */
  gate: number;
}

/** Host values of one parameter: N(0, 1/fan_in) for projections, 1 for norms, the gate value for gates. */
export function initialValues(spec: ParamSpec, index: number, o: InitOptions): Float32Array {
  const n = numel(spec.shape);
  if (spec.role === 'gate') return new Float32Array(n).fill(o.gate);
  if (!spec.role.startsWith('w')) return new Float32Array(n).fill(1);
  return randn(n, mixSeed(o.seed, 0x9a7a, index), 1 / Math.sqrt(spec.shape[1]!));
}

/** A model's parameters on one engine, in paramSpecs order. */
export class ParamSet {
  private constructor(
    readonly specs: ParamSpec[],
    readonly tensors: Tensor[],
  ) {}

  static async fromHost(engine: Engine, specs: ParamSpec[], values: (spec: ParamSpec, i: number) => Float32Array): Promise<ParamSet> {
    const tensors: Tensor[] = [];
    for (const [i, s] of specs.entries()) tensors.push(await engine.upload(values(s, i), s.shape, 'float32'));
    return new ParamSet(specs, tensors);
  }

  static init(engine: Engine, m: ModelShape, o: InitOptions): Promise<ParamSet> {
    return ParamSet.fromHost(engine, paramSpecs(m), (s, i) => initialValues(s, i, o));
  }

  /** Zero-filled tensors of the same shapes (gradients, optimizer moments). */
  static async zerosLike(engine: Engine, specs: ParamSpec[]): Promise<ParamSet> {
    const tensors: Tensor[] = [];
    for (const s of specs) tensors.push(await engine.empty(s.shape, 'float32'));
    return new ParamSet(specs, tensors);
  }

  layer(l: number): LayerParams {
    const base = l * LAYER_PARAM_NAMES.length;
    return Object.fromEntries(LAYER_PARAM_NAMES.map((r, i) => [r, this.tensors[base + i]!])) as LayerParams;
  }

  get layers(): number {
    return this.tensors.length / LAYER_PARAM_NAMES.length;
  }

  async download(): Promise<Float32Array[]> {
    return Promise.all(this.tensors.map(async (t) => (await t.download()) as Float32Array));
  }

  dispose(): void {
    for (const t of this.tensors) t.dispose();
  }
}
