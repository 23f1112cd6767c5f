// Deterministic synthetic inputs: N(0, 1) values keyed by (seed, step, tensor) and each element's index
// in the global [batch, tokens, hidden] tensor, so any sharding sees the same data and a resumed run
// sees the same batches as an uninterrupted one. The engine generates them in place (nn.randn): no
// host work or copy per step. Targets come from a teacher stack (train/trainer.ts).
import { mixSeed } from '../model/seeds.js';
import { localShards, type DataLayout, type DataSource, type SourceBatch } from './source.js';

const X_STREAM = 1, Y_STREAM = 2;

export function syntheticSource(seed: number, layout: DataLayout): DataSource {
  const { text, visual } = localShards(layout);
  return {
    description: `synthetic (seed ${seed})`,
    batch(step: number): SourceBatch {
      return {
        x: { key: mixSeed(seed, step, X_STREAM), width: layout.textHidden, rows: text.length, rowOffset: text.begin, totalRows: layout.textTokens },
        y: { key: mixSeed(seed, step, Y_STREAM), width: layout.visualHidden, rows: visual.length, rowOffset: visual.begin, totalRows: layout.visualTokens },
      };
    },
    close() {},
  };
}
