// The training job the benchmarks run: on CPU a small float32 stack that runs in seconds; on GPU the
// Llama-3.2-Vision cross-attention stack in bf16.
import { validateXAttnJob } from '../crds/validate.js';
import type { XAttnJob } from '../crds/types.js';
import type { BackendName } from '../runtime/engine/engine.js';

export interface BenchJobOptions {
  /** attention.keepValues: V stored, only K re-projected (with recomputeKV). */
  keepValues?: boolean;
  /** Text tokens of the whole job (default 1024 on GPU, 64 on CPU). */
  textTokens?: number;
}

export function benchJob(backend: BackendName, visualTokens: number, steps: number, workers: number, recomputeKV: boolean, opts: BenchJobOptions = {}): XAttnJob {
  const gpu = backend === 'cuda';
  const { keepValues = false, textTokens = gpu ? 1024 : 64 } = opts;
  return validateXAttnJob({
    apiVersion: 'xattn.io/v1alpha1',
    kind: 'XAttnJob',
    metadata: { name: 'bench-train' },
    spec: {
      workers,
      gpusPerWorker: gpu ? 1 : 0,
      model: gpu ? { preset: 'llama-3.2-11b-vision' } : { preset: 'custom', layers: 4, heads: 8, kvHeads: 2, headDim: 64, textHidden: 512, visualHidden: 512 },
      workload: { mode: 'train', textTokens, visualTokens, batch: 1, dtype: gpu ? 'bfloat16' : 'float32', steps, warmupSteps: 1, learningRate: 1e-3, seed: 1 },
      attention: { algorithm: 'lv-xattn', recomputeKV, keepValues },
    },
  });
}
