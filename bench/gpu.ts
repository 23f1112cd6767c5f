// npm run bench:gpu — on a CUDA machine: (a) our attention kernels vs PyTorch SDPA with the cuDNN
// backend, same run, same GPU; (b) with 2 GPUs, LV-XAttn vs Ring vs the no-communication bound over
// three interconnects. Prints tables and writes bench/results/gpu-<device>-<date>.json (or to
// $XATTN_BENCH_OUT). Runs from source (tsx) or bundled (node dist/bench-gpu.mjs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../crds/root.js';
import { attentionFlops, Engine, shardOf, type AlgorithmName, type DistCall } from '../runtime/engine/engine.js';
import { randn } from '../runtime/worker/random.js';
import { withRankEngine } from '../test/fixtures/rank-engine.js';
import { phase, sendToParent, spawnRanks } from '../test/fixtures/spawn-ranks.js';

type Shape = { heads: number; kvHeads: number; headDim: number; lq: number; lkv: number };
const KERNEL_SHAPES: Shape[] = [
  { heads: 32, kvHeads: 8, headDim: 128, lq: 2048, lkv: 32768 },
  { heads: 32, kvHeads: 8, headDim: 128, lq: 512, lkv: 131072 },
  { heads: 16, kvHeads: 16, headDim: 64, lq: 1024, lkv: 65536 },
];
// XATTN_BENCH_SMOKE=1 runs the distributed part on the CPU engine over TCP at toy shapes, to check
// the benchmark's plumbing on a machine without GPUs.
const SMOKE = process.env.XATTN_BENCH_SMOKE === '1';
const DIST_SHAPES: Shape[] = SMOKE ? [{ heads: 4, kvHeads: 2, headDim: 16, lq: 32, lkv: 512 }] : [
  { heads: 32, kvHeads: 8, headDim: 128, lq: 1024, lkv: 65536 },
  { heads: 32, kvHeads: 8, headDim: 128, lq: 256, lkv: 131072 },
  { heads: 32, kvHeads: 8, headDim: 128, lq: 4096, lkv: 32768 },
];
const INTERCONNECTS: Record<string, Record<string, string>> = {
  nvlink: {},
  'host-memory': { NCCL_P2P_DISABLE: '1' },
  sockets: { NCCL_P2P_DISABLE: '1', NCCL_SHM_DISABLE: '1' },
};
const key = (s: Shape) => `H${s.heads}/Hkv${s.kvHeads} d${s.headDim} Lq${s.lq} Lkv${s.lkv}`;
interface DistRow {
  shape: string;
  interconnect: string;
  lvxattn_ms: number;
  ring_ms: number;
  nocomm_ms: number;
  link_gbps: number;
  lv_bytes_per_step: number;
  ring_bytes_per_step: number;
  /** LV-XAttn step / max(no-comm step, time to move its blocks at link_gbps); target <= 1.05. */
  lv_bound_ratio: number;
  lv_speedup_vs_ring: number;
  lv_tflops_per_gpu: number;
  ring_tflops_per_gpu: number;
  peak_memory_bytes: { lv: number; ring: number };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median milliseconds of forward and forward+backward of one distributed call on this rank. */
async function timeCall(engine: Engine, call: DistCall, rank: number, world: number, iters: number) {
  const { batch, heads, kvHeads, headDim, dtype } = call.dims;
  const lq = shardOf(call.lqTotal, world, rank).length, lkv = shardOf(call.lkvTotal, world, rank).length;
  const up = (n: number, shape: number[], seed: number) => engine.upload(randn(n, seed), shape, dtype);
  const q = await up(batch * lq * heads * headDim, [batch, lq, heads, headDim], 1);
  const k = await up(batch * lkv * kvHeads * headDim, [batch, lkv, kvHeads, headDim], 2);
  const v = await up(batch * lkv * kvHeads * headDim, [batch, lkv, kvHeads, headDim], 3);
  const dout = await up(batch * lq * heads * headDim, [batch, lq, heads, headDim], 4);
  const fwd: number[] = [], all: number[] = [];
  let bytes = 0, memory = 0;
  for (let i = -2; i < iters; i++) {
    const t0 = performance.now();
    const f = await engine.attentionForward(call, { q, k, v });
    const t1 = performance.now();
    const b = await engine.attentionBackward(call, { q, k, v, o: f.o, lse: f.lse, dout });
    const t2 = performance.now();
    if (i >= 0) fwd.push(t1 - t0), all.push(t2 - t0);
    bytes = f.bytesSent + b.bytesSent;
    if (i === iters - 1) memory = engine.info().memoryUsed;
    [f.o, f.lse, b.dq, b.dk, b.dv].forEach((t) => t.dispose());
  }
  [q, k, v, dout].forEach((t) => t.dispose());
  return { fwd_ms: median(fwd), fwdbwd_ms: median(all), bytes_per_step: bytes, memory_used_bytes: memory };
}

const callOf = (s: Shape, algorithm: AlgorithmName, comm = true): DistCall => ({
  algorithm,
  comm,
  dims: { batch: 1, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, dtype: 'bfloat16' },
  lqTotal: s.lq,
  lkvTotal: s.lkv,
});

async function distributedRank() {
  return withRankEngine(SMOKE ? 'cpu' : 'cuda', 300_000, async ({ engine, rank, worldSize: world }) => {
    const linkBytes = SMOKE ? 1 << 20 : 64 << 20;
    phase('measuring the link');
    const linkSeconds = await engine.measureLink(linkBytes, 10);
    const cases = [];
    for (const s of DIST_SHAPES) {
      phase(`shape ${key(s)}`);
      const lv = await timeCall(engine, callOf(s, 'lv-xattn'), rank, world, 5);
      const ring = await timeCall(engine, callOf(s, 'ring'), rank, world, 5);
      const nocomm = await timeCall(engine, callOf(s, 'lv-xattn', false), rank, world, 5);
      cases.push({ shape: key(s), lv, ring, nocomm });
    }
    return { rank, link_gbps: linkBytes / linkSeconds / 1e9, cases };
  });
}

async function main() {
  if (SMOKE) return smoke();
  const gpus = Engine.cudaDeviceCount();
  if (gpus < 1) throw new Error('bench:gpu needs the CUDA build of the addon and a GPU (cudaDeviceCount() is 0)');
  const device = Engine.cudaDeviceName(0);
  console.log(`device: ${device} × ${gpus}`);

  // (a) kernels: ours at P = 1 through the engine; cuDNN through PyTorch in the same run.
  const engine = Engine.create({ backend: 'cuda', device: 0 });
  const ours = [];
  for (const s of KERNEL_SHAPES) {
    const t = await timeCall(engine, callOf(s, 'lv-xattn'), 0, 1, 10);
    const flops = attentionFlops({ batch: 1, heads: s.heads, headDim: s.headDim }, s.lq, s.lkv);
    ours.push({ shape: key(s), ours_fwd_tflops: flops / t.fwd_ms / 1e9, ours_fwdbwd_tflops: (3.5 * flops) / t.fwdbwd_ms / 1e9, peak_memory_bytes: t.memory_used_bytes });
  }
  await engine.close();
  let cudnn: Record<string, { cudnn_fwd_tflops: number; cudnn_fwdbwd_tflops: number }> = {};
  try {
    const out = execFileSync('python3', [path.join(projectRoot(), 'native/cuda/tests/cudnn_baseline.py'), '10'], { encoding: 'utf8' });
    cudnn = Object.fromEntries(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).map((r) => [r.shape, r]));
  } catch (e) {
    console.log(`cuDNN baseline unavailable: ${(e as Error).message.split('\n')[0]}`);
  }
  const kernels = ours.map((o) => ({ ...o, cudnn_fwd_tflops: cudnn[o.shape]?.cudnn_fwd_tflops ?? null, cudnn_fwdbwd_tflops: cudnn[o.shape]?.cudnn_fwdbwd_tflops ?? null }));
  console.log('\nkernels (bf16 TFLOP/s)      ours fwd  cuDNN fwd  ratio   ours f+b  cuDNN f+b  ratio');
  for (const k of kernels) {
    const r = (a: number, b: number | null) => (b ? (a / b).toFixed(2) : '  - ');
    console.log(`${k.shape.padEnd(34)} ${k.ours_fwd_tflops.toFixed(1).padStart(7)} ${String(k.cudnn_fwd_tflops ?? '-').padStart(10)} ${r(k.ours_fwd_tflops, k.cudnn_fwd_tflops).padStart(6)} ${k.ours_fwdbwd_tflops.toFixed(1).padStart(10)} ${String(k.cudnn_fwdbwd_tflops ?? '-').padStart(10)} ${r(k.ours_fwdbwd_tflops, k.cudnn_fwdbwd_tflops).padStart(6)}`);
  }

  // (b) two GPUs: LV-XAttn, Ring and the no-communication bound, per interconnect.
  const distributed: DistRow[] = [];
  if (gpus >= 2) {
    for (const [interconnect, env] of Object.entries(INTERCONNECTS)) {
      const ranks = await spawnRanks<Awaited<ReturnType<typeof distributedRank>>>(process.argv[1]!, 2, env, { args: ['rank'], execArgv: process.execArgv, timeoutMs: 180_000 });
      const link = Math.min(...ranks.map((r) => r.link_gbps));
      DIST_SHAPES.forEach((s, i) => {
        const worst = (f: (c: (typeof ranks)[0]['cases'][0]) => number) => Math.max(...ranks.map((r) => f(r.cases[i]!)));
        const lv = worst((c) => c.lv.fwdbwd_ms), ring = worst((c) => c.ring.fwdbwd_ms), nocomm = worst((c) => c.nocomm.fwdbwd_ms);
        const lvBytes = Math.max(...ranks.map((r) => r.cases[i]!.lv.bytes_per_step));
        const moveMs = (lvBytes / (link * 1e9)) * 1000;
        const flops = 3.5 * attentionFlops({ batch: 1, heads: s.heads, headDim: s.headDim }, s.lq, s.lkv);
        distributed.push({
          shape: key(s), interconnect, lvxattn_ms: lv, ring_ms: ring, nocomm_ms: nocomm, link_gbps: link,
          lv_bytes_per_step: lvBytes, ring_bytes_per_step: Math.max(...ranks.map((r) => r.cases[i]!.ring.bytes_per_step)),
          lv_bound_ratio: lv / Math.max(nocomm, moveMs), lv_speedup_vs_ring: ring / lv,
          lv_tflops_per_gpu: flops / 2 / lv / 1e9, ring_tflops_per_gpu: flops / 2 / ring / 1e9,
          peak_memory_bytes: { lv: Math.max(...ranks.map((r) => r.cases[i]!.lv.memory_used_bytes)), ring: Math.max(...ranks.map((r) => r.cases[i]!.ring.memory_used_bytes)) },
        });
      });
    }
    console.log('\n2 GPUs fwd+bwd ms             interconnect  link GB/s   LV-XAttn    Ring  no-comm  LV/bound  Ring/LV  LV TFLOP/s/GPU');
    for (const d of distributed)
      console.log(`${d.shape.padEnd(30)} ${d.interconnect.padStart(12)} ${d.link_gbps.toFixed(1).padStart(10)} ${d.lvxattn_ms.toFixed(2).padStart(10)} ${d.ring_ms.toFixed(2).padStart(7)} ${d.nocomm_ms.toFixed(2).padStart(8)} ${d.lv_bound_ratio.toFixed(3).padStart(9)} ${d.lv_speedup_vs_ring.toFixed(2).padStart(8)} ${d.lv_tflops_per_gpu.toFixed(1).padStart(15)}`);
  }
  const result = { device, gpus, date: new Date().toISOString(), kernels, distributed };
  const dir = process.env.XATTN_BENCH_OUT ?? path.join(projectRoot(), 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `gpu-${device.replace(/[^A-Za-z0-9]+/g, '-')}-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}

async function smoke() {
  const ranks = await spawnRanks<Awaited<ReturnType<typeof distributedRank>>>(process.argv[1]!, 2, {}, { args: ['rank'], execArgv: process.execArgv, timeoutMs: 60_000 });
  console.log(JSON.stringify(ranks.map((r) => ({ rank: r.rank, link_gbps: r.link_gbps, lv_ms: r.cases[0]!.lv.fwdbwd_ms, ring_ms: r.cases[0]!.ring.fwdbwd_ms }))));
}

if (process.argv[2] === 'rank') {
  await sendToParent(await distributedRank());
} else {
  await main();
}
