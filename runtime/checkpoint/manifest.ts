// The JSON manifest beside each checkpoint's safetensors file. It is written last (atomically), names
// the data file and carries its size and SHA-256, so a partial or corrupt checkpoint is detectable.
import { z } from 'zod';

export const CHECKPOINT_FORMAT = 'xattn-checkpoint';
export const CHECKPOINT_VERSION = 1;

const int = z.number().int().nonnegative();

export const manifestSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.literal(CHECKPOINT_VERSION),
  step: int,
  createdAt: z.string(),
  job: z.string(),
  worldSize: int,
  model: z.object({ layers: int, heads: int, kvHeads: int, headDim: int, textHidden: int, visualHidden: int }),
  /** Data and any randomness are pure functions of (seed, step): the counter is the whole RNG state. */
  rng: z.object({ kind: z.literal('counter'), seed: z.number().int(), nextStep: int }),
  optimizer: z.object({ kind: z.literal('adamw'), step: int }),
  file: z.object({ name: z.string().regex(/^[\w.-]+\.safetensors$/), bytes: int, sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
  tensors: z.array(z.string()),
});

export type CheckpointManifest = z.infer<typeof manifestSchema>;

const pad = (step: number) => String(step).padStart(8, '0');
export const manifestName = (step: number) => `step-${pad(step)}.json`;
export const dataName = (step: number, nonce: string) => `step-${pad(step)}-${nonce}.safetensors`;
export const MANIFEST_RE = /^step-(\d{8,})\.json$/;
export const TEMP_PREFIX = '.tmp-';
