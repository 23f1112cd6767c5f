// Typed facade over the addon's planning surface (exports.schedules): how LV-XAttn pipelines a problem
// on a given link, decided without an engine or a transport. For tests and tools.
import { loadAddon } from './addon.js';

import type { AttnDims, PartialPrecision, WirePrecision } from '../engine/engine.js';

export interface LvPlanQuery {
  dims: AttnDims;
  lqTotal: number;
  lkvTotal: number;
  world: number;
  /** This rank (its own block's split depends on its shard); default 0. */
  rank?: number;
  masked?: boolean;
  pass: 'forward' | 'backward';
  /** The ranks' probed exchange bandwidth; 0 = unknown. */
  linkGbps: number;
  /** The backend's nominal attention rate (CPU 5e10; Hopper 3e12 per SM). */
  flopsPerSecond: number;
  /** Visual rows the backend's backward kernel covers in one wave (all SMs busy once); 0 or absent where
   * unknown (CPU). The backward's own block then splits on a whole wave. */
  bwdKvRowsPerWave?: number;
  /** Partial results on the wire (engine DistCall.partials); default 'auto'. */
  partials?: PartialPrecision;
  /** Backward only: the forward of the same Q kept the blocks it received, so Q does not travel again. */
  queryKept?: boolean;
  /** Gather the blocks (true) or keep them on the ring (false) wherever the plan could; as $XATTN_LV_GATHER. */
  gather?: boolean;
}

export interface LvPlan {
  /** Row chunks every travelling block is sent in. */
  chunks: number;
  /** The owner's own block: whole, or in two pieces split along the batch or the visual rows. */
  ownBlock: 'whole' | 'batch' | 'kv';
  firstBatches: number;
  firstKvRows: number;
  /** How the pass's partial results travel ('auto' resolved). */
  partials: WirePrecision;
  /** Backward: the own block's second piece runs in one launch with the last visiting block (rows stacked). */
  stackLast: boolean;
  /** Blocks go to every rank at once, each rank runs all it receives in one launch (P >= 3: lv_plan.h). */
  gathered: boolean;
  /** Backward around the ring: the visiting inputs travel as one message (no first piece hides their hop). */
  inputsTogether: boolean;
}

export function lvPlan(query: LvPlanQuery): LvPlan {
  return loadAddon().schedules.lvPlan(query) as LvPlan;
}

/** One transfer of a copy-engine batch: a send to or a receive from `peer`, in `pieces` slot-sized pieces. */
export interface PieceJob {
  send: boolean;
  peer: number;
  pieces: number;
}

/** The order a batch of copy-engine transfers queues its pieces in: [job index, piece index] pairs. */
export function pieceOrder(jobs: PieceJob[], slots: number): [number, number][] {
  return loadAddon().schedules.pieceOrder({ jobs, slots }) as [number, number][];
}
