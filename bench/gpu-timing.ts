// bench:gpu's clocks: a distributed call's host-synced steps and queued batches taken in turns
// (timeInTurn), and a kernel's queued calls at P = 1 (timeQueued), each on inputs made on the device.
import { Engine, shardOf, type DistCall, type Tensor, type WirePrecision } from '../runtime/engine/engine.js';
import { bindNn } from '../runtime/model/nn.js';
import { median } from '../runtime/worker/median.js';

export type Inputs = { q: Tensor; k: Tensor; v: Tensor; dout: Tensor };

export interface Timing {
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
  /** The LV-XAttn backward ran its own rows stacked with the last visiting block's (LvPlan.stackLast). */
  stacked: boolean;
  /** Both LV-XAttn passes gathered their blocks (sent to every rank at once, one launch for all: LvPlan.gathered). */
  gathered: boolean;
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
    row_chunks: { fwd: f.rowChunks, bwd: b.rowChunks }, partials: { fwd: f.partials, bwd: b.partials }, stacked: b.stackedRows,
    gathered: f.gatheredBlocks && b.gatheredBlocks,
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
export async function timeInTurn(engine: Engine, calls: DistCall[], inputs: Inputs, iters: number, groups: number[][]): Promise<Timing[]> {
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
    memory_used_bytes: last!.used, memory_peak_bytes: peak, starts, row_chunks: last!.row_chunks, partials: last!.partials, stacked: last!.stacked, gathered: last!.gathered,
  }));
}

/** Calls a kernel batch queues, and seconds of untimed batches before the timed ones, ours and cuDNN's alike. */
export const KERNEL_ITERS = 20;
export const WARM_S = 2;

/**
 * Kernel throughput at P = 1: `iters` calls queued back to back and one wait for the device at the end,
 * so no host round trip sits between two kernels (the cuDNN baseline's events likewise time only the
 * device). The backwards reuse one forward's O and LSE (their time does not depend on the values).
 */
export async function timeQueued(engine: Engine, call: DistCall, { q, k, v, dout }: Inputs, iters: number): Promise<Timing> {
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
    return { fwd_ms, fwd_host_ms, fwd_wall_ms, fwdbwd_ms, bytes_per_step: 0, fwd_bytes_per_step: 0, memory_used_bytes: engine.info().memoryUsed, memory_peak_bytes: peak, starts: [], row_chunks: { fwd: 1, bwd: 1 }, partials: { fwd: 'float32' as const, bwd: 'float32' as const }, stacked: false, gathered: false };
  } finally {
    o!.dispose();
    lse!.dispose();
  }
}

/** Uploads this rank's shard of one call's inputs once and runs `use` on them (the calls that share them
 * share dims and lengths). */
export async function withInputs<T>(engine: Engine, call: DistCall, rank: number, world: number, use: (inputs: Inputs) => Promise<T>): Promise<T> {
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
