// Where training batches come from. A batch holds this rank's shard of every sample: rows
// [begin, begin + length) of the text and visual sequences (shardOf), for each of the `batch` samples.
import { shardOf } from '../engine/engine.js';
import type { RandnSpec } from '../model/nn.js';

export interface DataLayout {
  batch: number;
  /** Global sequence lengths, sharded across ranks. */
  textTokens: number;
  visualTokens: number;
  textHidden: number;
  visualHidden: number;
  rank: number;
  worldSize: number;
}

/** Values read on the host, or rows the engine generates in place (synthetic data: no host work or copy). */
export type Rows = Float32Array | RandnSpec;

export interface SourceBatch {
  /** [batch, local text tokens, textHidden] */
  x: Rows;
  /** [batch, local visual tokens, visualHidden] */
  y: Rows;
  /** [batch, local text tokens, textHidden]; absent when a teacher computes it (synthetic data). */
  target?: Rows;
}

export interface DataSource {
  readonly description: string;
  /** The batch of a 1-based step; the same step always gives the same batch. */
  batch(step: number): SourceBatch;
  close(): void;
}

export function localShards(l: DataLayout): { text: { begin: number; length: number }; visual: { begin: number; length: number } } {
  return { text: shardOf(l.textTokens, l.worldSize, l.rank), visual: shardOf(l.visualTokens, l.worldSize, l.rank) };
}
