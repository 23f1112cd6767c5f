// Deterministic synthetic inputs: every token row of every sample has its own seeded N(0, 1) stream,
// keyed by (seed, step, tensor, sample, global token index), so any sharding sees the same data and a
// resumed run sees the same batches as an uninterrupted one. Targets come from a teacher (train/teacher.ts).
import { mixSeed } from '../model/seeds.js';
import { randn } from '../worker/random.js';
import { localShards, type DataLayout, type DataSource, type HostBatch } from './source.js';

const X_STREAM = 1, Y_STREAM = 2;

function rows(seed: number, step: number, stream: number, batch: number, shard: { begin: number; length: number }, width: number): Float32Array {
  const out = new Float32Array(batch * shard.length * width);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < shard.length; t++)
      out.set(randn(width, mixSeed(seed, step, stream, b, shard.begin + t)), (b * shard.length + t) * width);
  return out;
}

export function syntheticSource(seed: number, layout: DataLayout): DataSource {
  const { text, visual } = localShards(layout);
  return {
    description: `synthetic (seed ${seed})`,
    batch(step: number): HostBatch {
      return {
        x: rows(seed, step, X_STREAM, layout.batch, text, layout.textHidden),
        y: rows(seed, step, Y_STREAM, layout.batch, visual, layout.visualHidden),
      };
    },
    close() {},
  };
}
