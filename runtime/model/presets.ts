// Cross-attention layer shapes of real models, and resolution of a manifest's model section.
import type { ModelPreset, ModelSpec } from '../../crds/types.js';
import { XattnError } from '../errors.js';

export interface ModelShape {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  textHidden: number;
  visualHidden: number;
}

export const PRESETS: Record<Exclude<ModelPreset, 'custom'>, ModelShape> = {
  // Llama-3.2-11B-Vision: 8 cross-attention layers among 40; GQA 32/8; vision features projected to 4096.
  'llama-3.2-11b-vision': { layers: 8, heads: 32, kvHeads: 8, headDim: 128, textHidden: 4096, visualHidden: 4096 },
  // mPLUG-Owl3-7B (Qwen2-7B): 4 hyper-attention layers; GQA 28/4; visual features projected to 3584.
  'mplug-owl3-7b': { layers: 4, heads: 28, kvHeads: 4, headDim: 128, textHidden: 3584, visualHidden: 3584 },
  // OpenFlamingo-9B (MPT-7B): a gated cross-attention block every 4th layer, 8 heads × 64, CLIP ViT-L/14 features.
  'openflamingo-9b': { layers: 8, heads: 8, kvHeads: 8, headDim: 64, textHidden: 4096, visualHidden: 1024 },
  // A toy shape for quick local runs and tests.
  tiny: { layers: 2, heads: 4, kvHeads: 2, headDim: 16, textHidden: 64, visualHidden: 48 },
};

const FIELDS: (keyof ModelShape)[] = ['layers', 'heads', 'kvHeads', 'headDim', 'textHidden', 'visualHidden'];

/** The preset's shape with the manifest's explicit fields on top; every field must end up set. */
export function resolveModel(spec: ModelSpec): ModelShape {
  const base: Partial<ModelShape> = spec.preset === 'custom' ? {} : PRESETS[spec.preset];
  const merged: Partial<ModelShape> = { ...base };
  for (const f of FIELDS) if (spec[f] !== undefined) merged[f] = spec[f];
  const missing = FIELDS.filter((f) => merged[f] === undefined);
  if (missing.length)
    throw new XattnError(
      'XATTN_E_MANIFEST',
      `model: ${missing.map((m) => `model.${m}`).join(', ')} must be set when model.preset is custom (or pick a preset: ${Object.keys(PRESETS).join(', ')})`,
    );
  const m = merged as ModelShape;
  if (m.heads % m.kvHeads !== 0)
    throw new XattnError('XATTN_E_MANIFEST', `model.heads (${m.heads}) must be divisible by model.kvHeads (${m.kvHeads})`);
  return m;
}
