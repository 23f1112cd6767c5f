// bench:gpu's report: the distributed rows it collects, the table it prints and the JSON file it writes.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../crds/root.js';
import type { WirePrecision } from '../runtime/engine/engine.js';

export interface DistRow {
  P: number;
  shape: string;
  interconnect: string;
  /** Step times (ms): device time per step of queued batches, as a training loop queues its steps. */
  lvxattn_ms: number;
  ring_ms: number;
  nocomm_ms: number;
  /** The forward alone (same steps): where the step's time goes. */
  lvxattn_fwd_ms: number;
  nocomm_fwd_ms: number;
  /** The same steps with the host waiting for the device after each pass (wall clock; the figures before
   * session 15): each pass also pays the host's wake-up and the ranks' start skew. */
  synced: { lvxattn_ms: number; ring_ms: number; nocomm_ms: number; lvxattn_fwd_ms: number; nocomm_fwd_ms: number; lv_bound_ratio: number };
  /** The host's ms to queue one step of a queued batch (slowest rank): near the step's ms, the host paced it. */
  host_queue_ms: { lv: number; nocomm: number };
  /** Median gap between the first and the last rank starting the same host-synced LV-XAttn step: time the ranks wait
   * for each other at the first hop, which the no-communication bound never pays. */
  lv_start_skew_ms: number;
  /** Row chunks LV-XAttn's travelling blocks used, forward and backward (more than one where the link
   * is the bottleneck). */
  lv_row_chunks: { fwd: number; bwd: number };
  /** How LV-XAttn's partials travelled in each pass (chosen by partials: auto). */
  lv_partials: { fwd: WirePrecision; bwd: WirePrecision };
  /** LV-XAttn's backward ran its own rows stacked with the last visiting block's (and the no-comm bound, mirroring
   * it, its last two blocks in one launch). */
  lv_stacked: boolean;
  nocomm_stacked: boolean;
  /** Both LV-XAttn passes gathered their blocks: one launch for all the visiting blocks (from P = 3). */
  lv_gathered: boolean;
  /** Slowest rank's ring-exchange bandwidth; null at P = 1 (no link). */
  link_gbps: number | null;
  /** How the transfers travelled (engine.info().transportPath), e.g. "nccl, copy engines to 1 of 1 peers". */
  transport_path: string;
  lv_bytes_per_step: number;
  ring_bytes_per_step: number;
  /** LV-XAttn step / max(no-comm step, time to move its blocks at link_gbps); target <= 1.05. */
  lv_bound_ratio: number;
  /** LV-XAttn step / its phase-wise floor: the backward needs the forward's result, so each pass takes at
   * least max(its no-comm time, its own bytes at link_gbps). Above 1.05 where one pass is link-bound and
   * the other compute-bound (the bound adds them up before taking the max). */
  lv_phase_floor_ratio: number;
  /** LV-XAttn with its partials' precision asked for instead of chosen (partials: float32 | float16). */
  lv_asked: Record<WirePrecision, VariantRow>;
  lv_speedup_vs_ring: number;
  lv_tflops_per_gpu: number;
  ring_tflops_per_gpu: number;
  /** engine.info().memoryPeak: most bytes in device tensors at once, inputs included (0 on CPU). */
  peak_memory_bytes: { lv: number; ring: number };
  memory_used_bytes: { lv: number; ring: number };
}
/** A variant of LV-XAttn: its step, forward, chunks, bytes, and ratios to its own bound (its bytes at
 * link_gbps; the same no-comm step) and phase-wise floor. */
export interface VariantRow {
  ms: number;
  fwd_ms: number;
  row_chunks: { fwd: number; bwd: number };
  bytes_per_step: number;
  bound_ratio: number;
  phase_floor_ratio: number;
}
/** Per-GPU TFLOP/s at P over that at P = 1, same shape; null when P = 1 was not run. */
export type ScalingRow = DistRow & { lv_efficiency: number | null; ring_efficiency: number | null };

const num = (x: number | null | undefined, digits: number) => (x == null ? '-' : x.toFixed(digits));
const sig3 = (x: number) => x.toPrecision(3); // TFLOP/s: hundreds on a GPU, hundredths in smoke runs
const COLUMNS: [string, number, (r: DistRow & Partial<ScalingRow>) => string][] = [
  ['P', 2, (r) => String(r.P)],
  ['shape', -32, (r) => r.shape],
  ['interconnect', 12, (r) => r.interconnect],
  ['link GB/s', 9, (r) => num(r.link_gbps, 1)],
  ['LV-XAttn', 9, (r) => num(r.lvxattn_ms, 2)],
  ['Ring', 8, (r) => num(r.ring_ms, 2)],
  ['no-comm', 8, (r) => num(r.nocomm_ms, 2)],
  ['LV fwd', 6, (r) => num(r.lvxattn_fwd_ms, 2)],
  ['nc fwd', 6, (r) => num(r.nocomm_fwd_ms, 2)],
  ['skew', 5, (r) => num(r.lv_start_skew_ms, 2)],
  ['chunks', 6, (r) => `${r.lv_row_chunks.fwd}/${r.lv_row_chunks.bwd}`],
  ['LV/bound', 8, (r) => num(r.lv_bound_ratio, 3)],
  ['LV/phase', 8, (r) => num(r.lv_phase_floor_ratio, 3)],
  ['LV host', 7, (r) => num(r.host_queue_ms.lv, 2)],
  ['nc host', 7, (r) => num(r.host_queue_ms.nocomm, 2)],
  ['synced LV', 9, (r) => num(r.synced.lvxattn_ms, 2)],
  ['synced/bound', 12, (r) => num(r.synced.lv_bound_ratio, 3)],
  ['wire', 5, (r) => `${r.lv_partials.fwd.slice(5)}/${r.lv_partials.bwd.slice(5)}`],
  ['stack', 5, (r) => `${r.lv_stacked ? 'y' : 'n'}/${r.nocomm_stacked ? 'y' : 'n'}`],
  ['gath', 4, (r) => (r.lv_gathered ? 'y' : 'n')],
  ['LV f32', 6, (r) => num(r.lv_asked.float32.ms, 2)],
  ['f32/bound', 9, (r) => num(r.lv_asked.float32.bound_ratio, 3)],
  ['LV f16', 6, (r) => num(r.lv_asked.float16.ms, 2)],
  ['f16 fwd', 7, (r) => num(r.lv_asked.float16.fwd_ms, 2)],
  ['f16 ch', 6, (r) => `${r.lv_asked.float16.row_chunks.fwd}/${r.lv_asked.float16.row_chunks.bwd}`],
  ['f16/bound', 9, (r) => num(r.lv_asked.float16.bound_ratio, 3)],
  ['f16/phase', 9, (r) => num(r.lv_asked.float16.phase_floor_ratio, 3)],
  ['Ring/LV', 7, (r) => num(r.lv_speedup_vs_ring, 2)],
  ['LV TF/GPU', 9, (r) => sig3(r.lv_tflops_per_gpu)],
  ['Ring TF/GPU', 11, (r) => sig3(r.ring_tflops_per_gpu)],
  ['LV eff', 6, (r) => num(r.lv_efficiency, 2)],
  ['Ring eff', 8, (r) => num(r.ring_efficiency, 2)],
  ['LV peak GiB', 11, (r) => num(r.peak_memory_bytes.lv / 2 ** 30, 2)],
];
/** A table of rows; a negative width left-aligns. */
export function printRows(title: string, rows: (DistRow & Partial<ScalingRow>)[]) {
  const pad = (s: string, w: number) => (w < 0 ? s.padEnd(-w) : s.padStart(w));
  console.log(`\n${title}\n${COLUMNS.map(([h, w]) => pad(h, w)).join('  ')}`);
  for (const r of rows) console.log(COLUMNS.map(([, w, f]) => pad(f(r), w)).join('  '));
}

export function writeResult<T extends { date: string }>(name: string, result: T) {
  const dir = process.env.XATTN_BENCH_OUT ?? path.join(projectRoot(), 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/[^A-Za-z0-9]+/g, '-')}-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}
