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
import { attentionFlops, Engine, shardOf, type AlgorithmName, type DistCall, type PartialPrecision, type Tensor, type WirePrecision } from '../runtime/engine/engine.js';
import { bindNn } from '../runtime/model/nn.js';
import { median } from '../runtime/worker/median.js';
import { printRows, writeResult, type DistRow, type ScalingRow, type VariantRow } from './gpu-report.js';
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
const GANG_TIMEOUT_MS = SMOKE ? 60_000 : 180_000; // a hung gang is killed, not waited on
const key = (s: Shape) => `H${s.heads}/Hkv${s.kvHeads} d${s.headDim} Lq${s.lq} Lkv${s.lkv}`;

/** lv: LV-XAttn as a user runs it (partials: auto); lv32 / lv16: with float32 / float16 partials asked for. */
interface RankCase { lv: Timing; ring: Timing; nocomm: Timing; lv32: Timing; lv16: Timing }
interface RankReport { rank: number; link_gbps: number | null; transport_path: string; cases: RankCase[] }
/** What the parent tells each rank to run (argv[3], JSON). */
interface GangSpec { shapes: Shape[]; iters: number }
type Inputs = { q: Tensor; k: Tensor; v: Tensor; dout: Tensor };

interface Timing {
  /** Distributed rows: device ms per step of queued batches (see queuedMs). Kernel rows: device ms per call. */
  fwd_ms: number;
  /** Kernel rows, per forward queued back to back: the host's ms to queue it, and the wall-clock ms. */
  fwd_host_ms?: number;
  fwd_wall_ms?: number;
  fwdbwd_ms: number;
  /** Distributed rows: the host's ms to queue a step of a queued batch. */
  fwdbwd_host_ms?: number;
  bytes_per_step: number;
  fwd_bytes_per_step: number;
  memory_used_bytes: number;
  memory_peak_bytes: number;
  /** Distributed rows: the median step with the host waiting for the device after each pass (wall clock). */
  synced?: { fwd_ms: number; fwdbwd_ms: number };
  /** When each host-synced step began, on one clock for every rank process. */
  starts: number[];
  row_chunks: { fwd: number; bwd: number };
  partials: { fwd: WirePrecision; bwd: WirePrecision };
}

/** One step of `call` on this rank: the forward, then the backward, each waited for on the device. */
async function timeStep(engine: Engine, call: DistCall, { q, k, v, dout }: Inputs) {
  const t0 = performance.now();
  // Calls resolve once queued on CUDA: wait for the device before reading each clock.
  const f = await engine.attentionForward(call, { q, k, v });
  await engine.synchronize();
  const t1 = performance.now();
  const b = await engine.attentionBackward(call, { q, k, v, o: f.o, lse: f.lse, dout });
  await engine.synchronize();
  const t2 = performance.now();
  const used = engine.info().memoryUsed; // with the step's outputs alive
  [f.o, f.lse, b.dq, b.dk, b.dv].forEach((t) => t.dispose());
  return {
    start: performance.timeOrigin + t0, fwd_ms: t1 - t0, fwdbwd_ms: t2 - t0, bytes: f.bytesSent + b.bytesSent, fwd_bytes: f.bytesSent, used,
    row_chunks: { fwd: f.rowChunks, bwd: b.rowChunks }, partials: { fwd: f.partials, bwd: b.partials },
  };
}

/** Steps a queued batch of a distributed call runs, and the timed rounds of them: the same on every rank
 * (the calls are collective). */
const QUEUED_STEPS = 6;
const QUEUED_ROUNDS = 4; // even: each order as often as its reverse

/**
 * Device ms per step of `steps` steps of `call` queued back to back (forwards only, or forward then
 * backward), between stopwatch marks on this rank's stream, as a training loop queues its layers: the host
 * never waits in between, so neither its wake-up after a wait nor the ranks' start skew (which the
 * no-communication call never pays) falls on the steps. One untimed step goes first: the ranks' hosts
 * start a batch up to half a millisecond apart, and that first step's transfers absorb it (afterwards each
 * host stays far ahead of its device).
 */
async function queuedMs(engine: Engine, call: DistCall, { q, k, v, dout }: Inputs, steps: number, backward: boolean): Promise<{ ms: number; host_ms: number }> {
  const step = async () => {
    const f = await engine.attentionForward(call, { q, k, v });
    const made = [f.o, f.lse];
    if (backward) {
      const b = await engine.attentionBackward(call, { q, k, v, o: f.o, lse: f.lse, dout });
      made.push(b.dq, b.dk, b.dv);
    }
    made.forEach((t) => t.dispose()); // frees are stream-ordered: after the step's kernels
  };
  await step();
  const t0 = performance.now();
  const started = engine.stopwatchMark();
  for (let s = 0; s < steps; s++) await step();
  await started;
  const host_ms = (performance.now() - t0) / steps; // near ms: the host, not the device, paces the steps
  await engine.stopwatchMark();
  return { ms: (await engine.stopwatchMs()) / steps, host_ms };
}

/** True on every rank once any rank says so (an all-reduce), so a collective loop ends on the same round
 * everywhere. */
async function anyRank(engine: Engine, flag: boolean): Promise<boolean> {
  const t = await engine.upload(new Float32Array([flag ? 1 : 0]), [1], 'float32');
  try {
    await engine.allReduce(t);
    return (await t.download())[0]! > 0;
  } finally {
    t.dispose();
  }
}

/**
 * Each call's forward and forward+backward on this rank, timed two ways: host-synced steps (the host waits
 * for the device after each pass; wall clock) and queued batches (queuedMs; the reported times). Every rank
 * takes the same order (the calls are collective). A call's memory peak covers the resident inputs and
 * everything its host-synced steps allocate.
 *
 * The calls run in groups (`groups`, indices into `calls`): per group, host-synced rounds (two untimed),
 * then WARM_S seconds of untimed queued batches, then queued rounds. Each round's order turns round every
 * other round, so each call follows each other one alike and whatever drifts on a shared machine falls on
 * every call alike. A GPU under sustained load runs at its power cap, and a batch after an idle stretch runs
 * faster: Ring over a slow link leaves the SMs idle for most of its steps, so it gets a group of its own (in
 * one rotation with it, the no-communication call always followed Ring's and read 9-14 % faster over host
 * memory than over NVLink, where Ring keeps the card busy).
 */
async function timeInTurn(engine: Engine, calls: DistCall[], inputs: Inputs, iters: number, groups: number[][]): Promise<Timing[]> {
  const runs = calls.map(() => ({ fwd: [] as number[], all: [] as number[], qFwd: [] as number[], qAll: [] as number[], qHost: [] as number[], starts: [] as number[], peak: 0, last: undefined as Awaited<ReturnType<typeof timeStep>> | undefined }));
  const inOrder = (group: number[], round: number) => (round % 2 ? [...group].reverse() : group);
  for (const group of groups) {
    for (let i = -2; i < iters; i++)
      for (const j of inOrder(group, i)) {
        const run = runs[j]!;
        engine.info({ resetPeak: true });
        run.last = await timeStep(engine, calls[j]!, inputs);
        run.peak = Math.max(run.peak, engine.info().memoryPeak);
        if (i >= 0) run.fwd.push(run.last.fwd_ms), run.all.push(run.last.fwdbwd_ms), run.starts.push(run.last.start);
      }
    for (const t0 = performance.now(); ; ) {
      for (const j of group) await queuedMs(engine, calls[j]!, inputs, QUEUED_STEPS, true);
      if (await anyRank(engine, performance.now() - t0 >= WARM_S * 1000)) break;
    }
    for (let i = 0; i < QUEUED_ROUNDS; i++)
      for (const j of inOrder(group, i)) {
        const run = runs[j]!;
        const fwd = await queuedMs(engine, calls[j]!, inputs, QUEUED_STEPS, false);
        const all = await queuedMs(engine, calls[j]!, inputs, QUEUED_STEPS, true);
        run.qFwd.push(fwd.ms), run.qAll.push(all.ms), run.qHost.push(all.host_ms);
      }
  }
  return runs.map(({ fwd, all, qFwd, qAll, qHost, starts, peak, last }) => ({
    fwd_ms: median(qFwd), fwdbwd_ms: median(qAll), fwdbwd_host_ms: median(qHost), synced: { fwd_ms: median(fwd), fwdbwd_ms: median(all) }, bytes_per_step: last!.bytes, fwd_bytes_per_step: last!.fwd_bytes,
    memory_used_bytes: last!.used, memory_peak_bytes: peak, starts, row_chunks: last!.row_chunks, partials: last!.partials,
  }));
}

/** Calls a kernel batch queues, and seconds of untimed batches before the timed ones, ours and cuDNN's alike. */
const KERNEL_ITERS = 20;
const WARM_S = 2;

/**
 * Kernel throughput at P = 1: `iters` calls queued back to back and one wait for the device at the end,
 * so no host round trip sits between two kernels (the cuDNN baseline's events likewise time only the
 * device). The backwards reuse one forward's O and LSE (their time does not depend on the values).
 */
async function timeQueued(engine: Engine, call: DistCall, { q, k, v, dout }: Inputs, iters: number): Promise<Timing> {
  const fwd = async () => {
    const f = await engine.attentionForward(call, { q, k, v });
    return [f.o, f.lse];
  };
  const [o, lse] = await fwd();
  const bwd = async () => {
    const b = await engine.attentionBackward(call, { q, k, v, o: o!, lse: lse!, dout });
    return [b.dq, b.dk, b.dv];
  };
  /** Of the last batch, per run: the host's ms to queue it (near the device's ms, the host paces the device)
   * and the wall-clock ms until the host saw it done. */
  let hostMs = 0, wallMs = 0;
  /** Mean device ms of `iters` queued runs, between stopwatch marks on the stream as cuDNN's baseline times
   * with CUDA events. Each run's tensors are disposed once it is queued (frees are stream-ordered). */
  const batch = async (run: () => Promise<Tensor[]>) => {
    await engine.synchronize();
    const t0 = performance.now();
    const started = engine.stopwatchMark(); // queued ahead of the runs, not awaited: no host gap after it
    await Promise.all(Array.from({ length: iters }, () => run().then((made) => made.forEach((t) => t.dispose()))));
    await started;
    hostMs = (performance.now() - t0) / iters;
    await engine.stopwatchMark();
    const ms = (await engine.stopwatchMs()) / iters;
    wallMs = (performance.now() - t0) / iters;
    return ms;
  };
  /** Median of three batches after WARM_S seconds of untimed ones: sustained load, as in training and as
   * cudnn_baseline.py times cuDNN. An H200 then runs at its power cap, below the boost clock that short
   * bursts see, and where it settles depends on how hot the previous case left it: a d64 forward timed
   * right after the d128 cases read 0.62 ms against 0.575 as the first case, in one untimed batch (12 ms). */
  const timed = async (run: () => Promise<Tensor[]>) => {
    for (const t0 = performance.now(); performance.now() - t0 < WARM_S * 1000; ) await batch(run);
    return median([await batch(run), await batch(run), await batch(run)]);
  };
  try {
    // One step alone first (also the warm-up): its peak is the case's, not a queued batch's many outputs.
    engine.info({ resetPeak: true });
    [...(await fwd()), ...(await bwd())].forEach((t) => t.dispose());
    await engine.synchronize();
    const peak = engine.info().memoryPeak;
    const fwd_ms = await timed(fwd);
    const fwd_host_ms = hostMs, fwd_wall_ms = wallMs;
    const fwdbwd_ms = await timed(async () => [...(await fwd()), ...(await bwd())]);
    return { fwd_ms, fwd_host_ms, fwd_wall_ms, fwdbwd_ms, bytes_per_step: 0, fwd_bytes_per_step: 0, memory_used_bytes: engine.info().memoryUsed, memory_peak_bytes: peak, starts: [], row_chunks: { fwd: 1, bwd: 1 }, partials: { fwd: 'float32' as const, bwd: 'float32' as const } };
  } finally {
    o!.dispose();
    lse!.dispose();
  }
}

/** Uploads this rank's shard of one call's inputs once and runs `use` on them (the calls that share them
 * share dims and lengths). */
async function withInputs<T>(engine: Engine, call: DistCall, rank: number, world: number, use: (inputs: Inputs) => Promise<T>): Promise<T> {
  const { dims: { batch, heads, kvHeads, headDim, dtype }, lqTotal, lkvTotal } = call;
  const lq = shardOf(lqTotal, world, rank).length, lkv = shardOf(lkvTotal, world, rank).length;
  // Fresh N(0, 1) samples made on the device, like the cuDNN baseline's torch.randn: the forward's work
  // depends a little on the values (it skips the O rescale where no row max moves).
  const nn = bindNn(engine);
  const up = (shape: number[], seed: number) => nn.randn(shape, { key: seed * 7919 + rank, rows: shape[0]! * shape[1]!, width: shape[2]! * shape[3]! }, dtype);
  const inputs = { q: await up([batch, lq, heads, headDim], 1), k: await up([batch, lkv, kvHeads, headDim], 2), v: await up([batch, lkv, kvHeads, headDim], 3), dout: await up([batch, lq, heads, headDim], 4) };
  try {
    return await use(inputs);
  } finally {
    Object.values(inputs).forEach((t) => t.dispose());
  }
}

const callOf = (s: Shape, algorithm: AlgorithmName, comm = true): DistCall => ({
  algorithm,
  comm,
  dims: { batch: 1, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, dtype: 'bfloat16' },
  lqTotal: s.lq,
  lkvTotal: s.lkv,
});

async function distributedRank({ shapes, iters }: GangSpec): Promise<RankReport> {
  return withRankEngine(SMOKE ? 'cpu' : 'cuda', 300_000, async ({ engine, rank, worldSize: world }) => {
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

/** The host-synced steps' figures (slowest rank), against the bound from the host-synced no-comm step. */
function syncedOf(cases: RankCase[], lvMoveMs: number): DistRow['synced'] {
  const worst = (f: (c: RankCase) => number) => Math.max(...cases.map(f));
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
  const worst = (f: (c: RankCase) => number) => Math.max(...cases.map(f));
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
    synced: syncedOf(cases, moveMs(lvBytes)),
    host_queue_ms: { lv: worst((c) => c.lv.fwdbwd_host_ms!), nocomm: worst((c) => c.nocomm.fwdbwd_host_ms!) },
    lv_start_skew_ms: median(cases[0]!.lv.starts.map((_, i) => Math.max(...cases.map((c) => c.lv.starts[i]!)) - Math.min(...cases.map((c) => c.lv.starts[i]!)))),
    lv_row_chunks: cases[0]!.lv.row_chunks,
    lv_partials: cases[0]!.lv.partials,
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
    },
  });
  const iters = Number(opts.iters);
  const picked = opts['kernel-shapes']?.split(',').map(Number) ?? KERNEL_SHAPES.map((_, i) => i);
  if (!picked.every((i) => Number.isInteger(i) && i >= 0 && i < KERNEL_SHAPES.length)) throw new Error(`--kernel-shapes ${opts['kernel-shapes']}: expected indices from 0 to ${KERNEL_SHAPES.length - 1}`);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`--iters ${opts.iters}: expected a positive integer`);
  if (opts['world-sizes'] !== undefined && !opts.scaling) throw new Error('--world-sizes needs --scaling');
  const interconnects = (opts.interconnects ?? Object.keys(INTERCONNECTS).join(',')).split(',');
  const known = { ...INTERCONNECTS, ...EXTRA_INTERCONNECTS };
  const unknown = interconnects.filter((i) => !(i in known));
  if (unknown.length) throw new Error(`--interconnects: unknown ${unknown.join(', ')} (known: ${Object.keys(known).join(', ')})`);
  // In smoke runs the "GPUs" are CPU rank processes (up to 8): two unless --world-sizes says more.
  if (SMOKE) {
    if (!opts.scaling) return printRows('smoke: CPU over TCP, fwd+bwd ms', await runGang(2, 'tcp', {}, { shapes: DIST_SHAPES, iters: 5 }));
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
  for (const s of opts['distributed-only'] ? [] : picked.map((i) => KERNEL_SHAPES[i]!)) {
    const call = callOf(s, 'lv-xattn');
    const engine = Engine.create({ backend: 'cuda', device: 0 }); // one per shape: no pool or state carried over
    const t = await withInputs(engine, call, 0, 1, (inputs) => timeQueued(engine, call, inputs, KERNEL_ITERS)).finally(() => engine.close());
    const flops = attentionFlops({ batch: 1, heads: s.heads, headDim: s.headDim }, s.lq, s.lkv);
    ours.push({ shape: key(s), ours_fwd_tflops: flops / t.fwd_ms / 1e9, ours_fwdbwd_tflops: (3.5 * flops) / t.fwdbwd_ms / 1e9, ours_fwd_ms: t.fwd_ms, ours_fwd_host_ms: t.fwd_host_ms ?? null, ours_fwd_wall_ms: t.fwd_wall_ms ?? null, peak_memory_bytes: t.memory_peak_bytes, memory_used_bytes: t.memory_used_bytes });
  }
  let cudnn: Record<string, { cudnn_fwd_tflops: number; cudnn_fwdbwd_tflops: number }> = {};
  if (ours.length) try {
    const out = execFileSync('python3', [path.join(projectRoot(), 'native/cuda/tests/cudnn_baseline.py'), String(KERNEL_ITERS), String(picked.length === 1 ? picked[0] : -1), String(WARM_S)], { encoding: 'utf8' });
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
    for (const interconnect of interconnects) distributed.push(...(await runGang(2, interconnect, known[interconnect]!, { shapes: DIST_SHAPES, iters })));
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
