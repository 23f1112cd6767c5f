// npm run bench:gpu — on a CUDA machine: (a) our attention kernels vs PyTorch SDPA with the cuDNN
// backend, same run, same GPU; (b) with 2 GPUs, LV-XAttn vs Ring vs the no-communication bound over
// three interconnects. Writes bench/results/gpu-<device>-<date>.json.
// `--scaling [--world-sizes 1,2,4]` runs (c) instead: strong scaling, the same global shapes at every
// P (default: powers of two up to the GPU count), per-GPU TFLOP/s and efficiency against P = 1.
// Writes bench/results/gpu-scaling-<device>-<gpus>x-<date>.json.
// Both print tables and write into $XATTN_BENCH_OUT when set. Runs from source (tsx) or bundled
// (node dist/bench-gpu.mjs).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../crds/root.js';
import { attentionFlops, Engine, type AlgorithmName, type DistCall, type PartialPrecision } from '../runtime/engine/engine.js';
import { median } from '../runtime/worker/median.js';
import { pickShapes } from './shape-pick.js';
import { printRows, writeResult, type DistRow, type ScalingRow, type VariantRow } from './gpu-report.js';
import { KERNEL_ITERS, timeInTurn, timeQueued, WARM_S, withInputs, type Timing } from './gpu-timing.js';
import { withRankEngine } from '../test/fixtures/rank-engine.js';
import { phase, sendToParent, spawnRanks } from '../test/fixtures/spawn-ranks.js';

type Shape = { heads: number; kvHeads: number; headDim: number; lq: number; lkv: number };
const KERNEL_SHAPES: Shape[] = [
  { heads: 32, kvHeads: 8, headDim: 128, lq: 2048, lkv: 32768 },
  { heads: 32, kvHeads: 8, headDim: 128, lq: 512, lkv: 131072 },
  { heads: 16, kvHeads: 16, headDim: 64, lq: 1024, lkv: 65536 },
];
// XATTN_BENCH_SMOKE=1 runs the distributed parts on the CPU engine over TCP at toy shapes, to check
// the benchmark's plumbing on a machine without GPUs.
const SMOKE = process.env.XATTN_BENCH_SMOKE === '1';
const toy = (lq: number, lkv: number): Shape => ({ heads: 4, kvHeads: 2, headDim: 16, lq, lkv });
const big = (lq: number, lkv: number): Shape => ({ heads: 32, kvHeads: 8, headDim: 128, lq, lkv });
const DIST_SHAPES: Shape[] = SMOKE ? [toy(32, 512)] : [big(1024, 65536), big(256, 131072), big(4096, 32768)];
// Global shapes, the same at every P; the largest fits one GPU (K and V are 2 GiB of bf16).
const SCALING_SHAPES: Shape[] = SMOKE ? [toy(32, 1024), toy(16, 2048)] : [big(1024, 262144), big(256, 524288)];
const INTERCONNECTS: Record<string, Record<string, string>> = {
  nvlink: {},
  'host-memory': { NCCL_P2P_DISABLE: '1' },
  sockets: { NCCL_P2P_DISABLE: '1', NCCL_SHM_DISABLE: '1' },
};
// Not in the default set: NVLink through NCCL's kernels instead of copy engines, the anchor for what the
// copy engines change (same link, same run).
const EXTRA_INTERCONNECTS: Record<string, Record<string, string>> = { 'nvlink-nccl-kernels': { XATTN_COPY_ENGINE: '0' } };
// NCCL variables mean nothing to the CPU engine's TCP transport, so smoke runs one interconnect.
const SCALING_INTERCONNECTS: Record<string, Record<string, string>> = SMOKE
  ? { tcp: {} }
  : { nvlink: INTERCONNECTS.nvlink!, 'host-memory': INTERCONNECTS['host-memory']! };
// A hung gang is killed, not waited on. The sockets gang runs ~2 min (Ring's queued batches over a ~2 GB/s
// link take most of it).
const GANG_TIMEOUT_MS = SMOKE ? 60_000 : 240_000;
// A stalled transfer must fail inside a rank first (the transport's watchdog names it), not with the gang's
// kill: the longest transfer here (Ring's K/V over sockets, queued behind 6 steps) takes seconds.
const RANK_TIMEOUT_MS = SMOKE ? 45_000 : 120_000;
const key = (s: Shape) => `H${s.heads}/Hkv${s.kvHeads} d${s.headDim} Lq${s.lq} Lkv${s.lkv}`;

/** lv: LV-XAttn as a user runs it (partials: auto); lv32 / lv16: with float32 / float16 partials asked for. */
interface RankCase { lv: Timing; ring: Timing; nocomm: Timing; lv32: Timing; lv16: Timing }
interface RankReport { rank: number; link_gbps: number | null; transport_path: string; cases: RankCase[] }
/** What the parent tells each rank to run (argv[3], JSON). */
interface GangSpec { shapes: Shape[]; iters: number }

const callOf = (s: Shape, algorithm: AlgorithmName, comm = true): DistCall => ({
  algorithm,
  comm,
  dims: { batch: 1, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, dtype: 'bfloat16' },
  lqTotal: s.lq,
  lkvTotal: s.lkv,
});

async function distributedRank({ shapes, iters }: GangSpec): Promise<RankReport> {
  return withRankEngine(SMOKE ? 'cpu' : 'cuda', RANK_TIMEOUT_MS, async ({ engine, rank, worldSize: world }) => {
    let link_gbps: number | null = null; // one rank has no link
    if (world > 1) {
      const linkBytes = SMOKE ? 1 << 20 : 64 << 20;
      phase('measuring the link');
      link_gbps = linkBytes / (await engine.measureLink(linkBytes, 10)) / 1e9;
    }
    const cases: RankCase[] = [];
    for (const s of shapes) {
      phase(`shape ${key(s)}`);
      const asked = (partials: PartialPrecision): DistCall => ({ ...callOf(s, 'lv-xattn'), partials });
      const calls = [callOf(s, 'lv-xattn'), callOf(s, 'ring'), callOf(s, 'lv-xattn', false), asked('float32'), asked('float16')];
      const groups = [[0, 2, 3, 4], [1]]; // Ring apart (timeInTurn says why)
      const [lv, ring, nocomm, lv32, lv16] = await withInputs(engine, calls[0]!, rank, world, (inputs) => timeInTurn(engine, calls, inputs, iters, groups));
      cases.push({ lv: lv!, ring: ring!, nocomm: nocomm!, lv32: lv32!, lv16: lv16! });
    }
    return { rank, link_gbps, transport_path: engine.info().transportPath, cases };
  });
}

type Worst = (f: (c: RankCase) => number) => number;

/** The host-synced steps' figures (slowest rank), against the bound from the host-synced no-comm step. */
function syncedOf(worst: Worst, lvMoveMs: number): DistRow['synced'] {
  const lv = worst((c) => c.lv.synced!.fwdbwd_ms), nocomm = worst((c) => c.nocomm.synced!.fwdbwd_ms);
  return {
    lvxattn_ms: lv, ring_ms: worst((c) => c.ring.synced!.fwdbwd_ms), nocomm_ms: nocomm,
    lvxattn_fwd_ms: worst((c) => c.lv.synced!.fwd_ms), nocomm_fwd_ms: worst((c) => c.nocomm.synced!.fwd_ms),
    lv_bound_ratio: lv / Math.max(nocomm, lvMoveMs),
  };
}

/** One shape's row from every rank's timings: a step lasts as long as its slowest rank. */
function rowOf(s: Shape, interconnect: string, cases: RankCase[], link: number | null, path: string): DistRow {
  const P = cases.length;
  const worst: Worst = (f) => Math.max(...cases.map(f));
  const lv = worst((c) => c.lv.fwdbwd_ms), ring = worst((c) => c.ring.fwdbwd_ms), nocomm = worst((c) => c.nocomm.fwdbwd_ms);
  const lvBytes = worst((c) => c.lv.bytes_per_step);
  const moveMs = (bytes: number) => (link ? (bytes / (link * 1e9)) * 1000 : 0);
  const ncFwd = worst((c) => c.nocomm.fwd_ms), ncBwd = worst((c) => c.nocomm.fwdbwd_ms - c.nocomm.fwd_ms);
  /** Each pass at the slower of its compute and its own bytes on the link, the slowest rank's of each. */
  const phaseFloor = (t: (c: RankCase) => Timing) =>
    Math.max(ncFwd, moveMs(worst((c) => t(c).fwd_bytes_per_step))) +
    Math.max(ncBwd, moveMs(worst((c) => t(c).bytes_per_step - t(c).fwd_bytes_per_step)));
  const variant = (t: (c: RankCase) => Timing): VariantRow => {
    const ms = worst((c) => t(c).fwdbwd_ms), bytes = worst((c) => t(c).bytes_per_step);
    return { ms, fwd_ms: worst((c) => t(c).fwd_ms), row_chunks: t(cases[0]!).row_chunks, bytes_per_step: bytes, bound_ratio: ms / Math.max(nocomm, moveMs(bytes)), phase_floor_ratio: ms / phaseFloor(t) };
  };
  const flops = 3.5 * attentionFlops({ batch: 1, heads: s.heads, headDim: s.headDim }, s.lq, s.lkv); // fwd + bwd
  return {
    P, shape: key(s), interconnect, lvxattn_ms: lv, ring_ms: ring, nocomm_ms: nocomm,
    lvxattn_fwd_ms: worst((c) => c.lv.fwd_ms), nocomm_fwd_ms: worst((c) => c.nocomm.fwd_ms),
    synced: syncedOf(worst, moveMs(lvBytes)),
    host_queue_ms: { lv: worst((c) => c.lv.fwdbwd_host_ms!), nocomm: worst((c) => c.nocomm.fwdbwd_host_ms!) },
    lv_start_skew_ms: median(cases[0]!.lv.starts.map((_, i) => Math.max(...cases.map((c) => c.lv.starts[i]!)) - Math.min(...cases.map((c) => c.lv.starts[i]!)))),
    lv_row_chunks: cases[0]!.lv.row_chunks,
    lv_partials: cases[0]!.lv.partials,
    lv_stacked: cases[0]!.lv.stacked, nocomm_stacked: cases[0]!.nocomm.stacked,
    lv_gathered: cases[0]!.lv.gathered,
    link_gbps: link,
    transport_path: path,
    lv_bytes_per_step: lvBytes, ring_bytes_per_step: worst((c) => c.ring.bytes_per_step),
    lv_bound_ratio: lv / Math.max(nocomm, moveMs(lvBytes)), lv_phase_floor_ratio: lv / phaseFloor((c) => c.lv),
    lv_speedup_vs_ring: ring / lv,
    lv_asked: { float32: variant((c) => c.lv32), float16: variant((c) => c.lv16) },
    lv_tflops_per_gpu: flops / P / lv / 1e9, ring_tflops_per_gpu: flops / P / ring / 1e9,
    peak_memory_bytes: { lv: worst((c) => c.lv.memory_peak_bytes), ring: worst((c) => c.ring.memory_peak_bytes) },
    memory_used_bytes: { lv: worst((c) => c.lv.memory_used_bytes), ring: worst((c) => c.ring.memory_used_bytes) },
  };
}

/** Runs one gang of P rank processes with `env` and returns a row per shape. */
async function runGang(P: number, interconnect: string, env: Record<string, string>, spec: GangSpec): Promise<DistRow[]> {
  const ranks = await spawnRanks<RankReport>(process.argv[1]!, P, env, { args: ['rank', JSON.stringify(spec)], execArgv: process.execArgv, timeoutMs: GANG_TIMEOUT_MS });
  const link = P > 1 ? Math.min(...ranks.map((r) => r.link_gbps!)) : null;
  return spec.shapes.map((s, i) => rowOf(s, interconnect, ranks.map((r) => r.cases[i]!), link, ranks[0]!.transport_path));
}

function withEfficiency(rows: DistRow[]): ScalingRow[] {
  return rows.map((r) => {
    const base = rows.find((b) => b.P === 1 && b.shape === r.shape);
    return { ...r, lv_efficiency: base ? r.lv_tflops_per_gpu / base.lv_tflops_per_gpu : null, ring_efficiency: base ? r.ring_tflops_per_gpu / base.ring_tflops_per_gpu : null };
  });
}

/** (c) Every P in worldSizes over each interconnect; P = 1 runs once, with nothing to move. */
async function scaling(device: string, gpus: number, worldSizes: number[]) {
  console.log(`strong scaling on ${device} × ${gpus}: P = ${worldSizes.join(', ')}`);
  const rows: DistRow[] = [], failures: { P: number; interconnect: string; error: string }[] = [];
  for (const P of worldSizes) {
    for (const [interconnect, env] of Object.entries(P === 1 ? { none: {} } : SCALING_INTERCONNECTS)) {
      const t0 = performance.now();
      try {
        rows.push(...(await runGang(P, interconnect, env, { shapes: SCALING_SHAPES, iters: 3 })));
        console.log(`P=${P} ${interconnect}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        // Keep the other gangs' results: one OOM or hang should not cost the whole run.
        failures.push({ P, interconnect, error: (e as Error).message });
        console.log(`P=${P} ${interconnect} failed: ${(e as Error).message.slice(0, 2000)}`);
      }
    }
  }
  const result = { device, gpus, date: new Date().toISOString(), scaling: withEfficiency(rows), failures };
  printRows('strong scaling, fwd+bwd ms at global shapes (slowest rank)', result.scaling);
  writeResult(`gpu-scaling-${device}-${gpus}x`, result);
  if (failures.length) process.exitCode = 1;
}

/** --world-sizes 1,2,4; by default every power of two up to `gpus`. */
function worldSizesOf(arg: string | undefined, gpus: number): number[] {
  if (arg === undefined) return Array.from({ length: Math.floor(Math.log2(gpus)) + 1 }, (_, i) => 2 ** i);
  const sizes = arg.split(',').map(Number);
  const bad = sizes.filter((p) => !Number.isInteger(p) || p < 1 || p > gpus);
  if (bad.length) throw new Error(`--world-sizes ${arg}: each must be an integer from 1 to ${gpus}`);
  return sizes;
}

async function main() {
  const { values: opts } = parseArgs({
    options: {
      scaling: { type: 'boolean', default: false },
      'world-sizes': { type: 'string' },
      'distributed-only': { type: 'boolean', default: false }, // skip (a): A/B runs of the schedules
      iters: { type: 'string', default: '9' }, // timed steps per distributed case (median)
      interconnects: { type: 'string' }, // e.g. nvlink,sockets: a subset of (b), for experiments
      'kernel-shapes': { type: 'string' }, // (a)'s shapes by index, in this order (e.g. 2 or 2,1,2), for experiments
      'dist-shapes': { type: 'string' }, // (b)'s shapes by index (e.g. 1: 256x128K only), for experiments
    },
  });
  const iters = Number(opts.iters);
  const kernelShapes = pickShapes(opts['kernel-shapes'], KERNEL_SHAPES, 'kernel-shapes');
  const distShapes = pickShapes(opts['dist-shapes'], DIST_SHAPES, 'dist-shapes');
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`--iters ${opts.iters}: expected a positive integer`);
  if (opts['world-sizes'] !== undefined && !opts.scaling) throw new Error('--world-sizes needs --scaling');
  const interconnects = (opts.interconnects ?? Object.keys(INTERCONNECTS).join(',')).split(',');
  const known = { ...INTERCONNECTS, ...EXTRA_INTERCONNECTS };
  const unknown = interconnects.filter((i) => !(i in known));
  if (unknown.length) throw new Error(`--interconnects: unknown ${unknown.join(', ')} (known: ${Object.keys(known).join(', ')})`);
  // In smoke runs the "GPUs" are CPU rank processes (up to 8): two unless --world-sizes says more.
  if (SMOKE) {
    if (!opts.scaling) {
      const distributed = await runGang(2, 'tcp', {}, { shapes: distShapes, iters: 5 });
      printRows('smoke: CPU over TCP, fwd+bwd ms', distributed);
      return writeResult('gpu-distributed-cpu-smoke', { device: 'cpu (smoke)', gpus: 0, date: new Date().toISOString(), kernels: [], distributed });
    }
    const sizes = worldSizesOf(opts['world-sizes'] ?? '1,2', 8);
    return scaling('cpu', Math.max(...sizes), sizes);
  }
  const gpus = Engine.cudaDeviceCount();
  if (gpus < 1) throw new Error('bench:gpu needs the CUDA build of the addon and a GPU (cudaDeviceCount() is 0)');
  const device = Engine.cudaDeviceName(0);
  console.log(`device: ${device} × ${gpus}`);
  if (opts.scaling) return scaling(device, gpus, worldSizesOf(opts['world-sizes'], gpus));

  // (a) kernels: ours at P = 1 through the engine; cuDNN through PyTorch in the same run.
  const ours = [];
  for (const s of opts['distributed-only'] ? [] : kernelShapes) {
    const call = callOf(s, 'lv-xattn');
    const engine = Engine.create({ backend: 'cuda', device: 0 }); // one per shape: no pool or state carried over
    const t = await withInputs(engine, call, 0, 1, (inputs) => timeQueued(engine, call, inputs, KERNEL_ITERS)).finally(() => engine.close());
    const flops = attentionFlops({ batch: 1, heads: s.heads, headDim: s.headDim }, s.lq, s.lkv);
    ours.push({ shape: key(s), ours_fwd_tflops: flops / t.fwd_ms / 1e9, ours_fwdbwd_tflops: (3.5 * flops) / t.fwdbwd_ms / 1e9, ours_fwd_ms: t.fwd_ms, ours_fwd_host_ms: t.fwd_host_ms ?? null, ours_fwd_wall_ms: t.fwd_wall_ms ?? null, peak_memory_bytes: t.memory_peak_bytes, memory_used_bytes: t.memory_used_bytes });
  }
  let cudnn: Record<string, { cudnn_fwd_tflops: number; cudnn_fwdbwd_tflops: number }> = {};
  if (ours.length) try {
    const out = execFileSync('python3', [path.join(projectRoot(), 'native/cuda/tests/cudnn_baseline.py'), String(KERNEL_ITERS), String(kernelShapes.length === 1 ? KERNEL_SHAPES.indexOf(kernelShapes[0]!) : -1), String(WARM_S)], { encoding: 'utf8' });
    cudnn = Object.fromEntries(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).map((r) => [r.shape, r]));
  } catch (e) {
    console.log(`cuDNN baseline unavailable: ${(e as Error).message.split('\n')[0]}`);
  }
  const kernels = ours.map((o) => ({ ...o, cudnn_fwd_tflops: cudnn[o.shape]?.cudnn_fwd_tflops ?? null, cudnn_fwdbwd_tflops: cudnn[o.shape]?.cudnn_fwdbwd_tflops ?? null }));
  if (kernels.length) console.log('\nkernels (bf16 TFLOP/s)      ours fwd  cuDNN fwd  ratio   ours f+b  cuDNN f+b  ratio');
  for (const k of kernels) {
    const r = (a: number, b: number | null) => (b ? (a / b).toFixed(2) : '  - ');
    console.log(`${k.shape.padEnd(34)} ${k.ours_fwd_tflops.toFixed(1).padStart(7)} ${String(k.cudnn_fwd_tflops ?? '-').padStart(10)} ${r(k.ours_fwd_tflops, k.cudnn_fwd_tflops).padStart(6)} ${k.ours_fwdbwd_tflops.toFixed(1).padStart(10)} ${String(k.cudnn_fwdbwd_tflops ?? '-').padStart(10)} ${r(k.ours_fwdbwd_tflops, k.cudnn_fwdbwd_tflops).padStart(6)}`);
  }
  for (const k of kernels)
    if (k.ours_fwd_host_ms !== null && k.ours_fwd_wall_ms !== null)
      console.log(`${k.shape}: a forward takes ${k.ours_fwd_ms.toFixed(3)} ms on the device, ${k.ours_fwd_wall_ms.toFixed(3)} by the wall clock; the host queues one in ${k.ours_fwd_host_ms.toFixed(3)}`);

  // (b) two GPUs: LV-XAttn, Ring and the no-communication bound, per interconnect.
  const distributed: DistRow[] = [];
  if (gpus >= 2) {
    for (const interconnect of interconnects) distributed.push(...(await runGang(2, interconnect, known[interconnect]!, { shapes: distShapes, iters })));
    printRows('2 GPUs, fwd+bwd ms (slowest rank)', distributed);
  }
  const result = { device, gpus, date: new Date().toISOString(), kernels, distributed };
  writeResult(opts['distributed-only'] ? `gpu-distributed-${device}` : `gpu-${device}`, result);
}

if (process.argv[2] === 'rank') {
  await sendToParent(await distributedRank(JSON.parse(process.argv[3]!) as GangSpec));
} else {
  await main();
}
