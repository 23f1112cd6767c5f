// npm run bench:cpu — CPU attention GFLOP/s (one process), then LV-XAttn vs Ring Attention over
// loopback TCP at a shape where Ring is communication-bound (short text, long visual input).
// Prints a table and writes bench/results/cpu-<date>.json with the CPU's name.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { attentionFlops, Engine, type DistCall } from '../runtime/engine/engine.js';
import { runLocal } from '../runtime/launcher/run-local.js';
import { randn } from '../runtime/worker/random.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const device = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores)`;

async function kernelGflops(): Promise<Record<string, number | string>> {
  const engine = Engine.create();
  const dims = { batch: 1, heads: 8, kvHeads: 2, headDim: 64, dtype: 'float32' as const };
  const lq = 256, lkv = 8192;
  const call: DistCall = { algorithm: 'lv-xattn', dims, lqTotal: lq, lkvTotal: lkv };
  const q = await engine.upload(randn(lq * 8 * 64, 1), [1, lq, 8, 64], 'float32');
  const k = await engine.upload(randn(lkv * 2 * 64, 2), [1, lkv, 2, 64], 'float32');
  const v = await engine.upload(randn(lkv * 2 * 64, 3), [1, lkv, 2, 64], 'float32');
  const dout = await engine.upload(randn(lq * 8 * 64, 4), [1, lq, 8, 64], 'float32');
  const reps = 3;
  let fwd = Infinity, bwd = Infinity;
  for (let i = 0; i <= reps; i++) {
    const t0 = performance.now();
    const f = await engine.attentionForward(call, { q, k, v });
    const t1 = performance.now();
    const b = await engine.attentionBackward(call, { q, k, v, o: f.o, lse: f.lse, dout });
    const t2 = performance.now();
    if (i > 0) (fwd = Math.min(fwd, t1 - t0)), (bwd = Math.min(bwd, t2 - t1));
    [f.o, f.lse, b.dq, b.dk, b.dv].forEach((t) => t.dispose());
  }
  await engine.close();
  const flops = attentionFlops(dims, lq, lkv);
  return {
    shape: `B1 H8/Hkv2 d64 Lq${lq} Lkv${lkv} float32`,
    threads: process.env.XATTN_CPU_THREADS ?? String(cpus().length),
    fwd_ms: fwd,
    bwd_ms: bwd,
    fwd_gflops: flops / fwd / 1e6,
    bwd_gflops: (2.5 * flops) / bwd / 1e6,
  };
}

async function distributed(worldSize: number, algorithm: 'lv-xattn' | 'ring') {
  const dir = mkdtempSync(path.join(tmpdir(), 'xattn-bench-'));
  const file = path.join(dir, 'job.yaml');
  const job = {
    apiVersion: 'xattn.io/v1alpha1',
    kind: 'XAttnJob',
    metadata: { name: 'bench-cpu' },
    spec: {
      workers: worldSize,
      model: { preset: 'custom', layers: 1, heads: 8, kvHeads: 8, headDim: 64, textHidden: 512, visualHidden: 512 },
      workload: { mode: 'benchmark', textTokens: 8 * worldSize, visualTokens: 16384 * worldSize, dtype: 'float32', steps: 5, warmupSteps: 1 },
      attention: { algorithm },
    },
  };
  writeFileSync(file, stringify(job));
  const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
  const s = await runLocal(file, { workerEntry: path.join(root, 'bin/xattn.js'), stdout: quiet, stderr: quiet, tty: false });
  return { worldSize, algorithm, shape: `H8/Hkv8 d64 Lq${8 * worldSize} Lkv${16384 * worldSize} float32`, step_ms: s.stepSeconds * 1000, bytes_per_step: s.bytesSentPerStepPerWorker, comm_wait_fraction: s.commWaitFraction, gflops_per_worker: s.attentionTflopsPerWorker * 1000 };
}

const kernels = await kernelGflops();
console.log(`device: ${device}`);
console.log(`CPU attention (${kernels.shape}): forward ${(kernels.fwd_gflops as number).toFixed(2)} GFLOP/s, backward ${(kernels.bwd_gflops as number).toFixed(2)} GFLOP/s`);
const dist = [];
// --world-sizes 2,4,8 picks the ranks compared (default 2,4: 8 processes on a small machine is slow).
const arg = process.argv.indexOf('--world-sizes');
const sizes = (arg > 0 ? process.argv[arg + 1]! : '2,4').split(',').map(Number);
for (const P of sizes) {
  const lv = await distributed(P, 'lv-xattn');
  const ring = await distributed(P, 'ring');
  dist.push(lv, ring);
  console.log(`P=${P} ${lv.shape}: lv-xattn ${lv.step_ms.toFixed(1)} ms (${(lv.bytes_per_step / 1e6).toFixed(2)} MB/step/worker)  ring ${ring.step_ms.toFixed(1)} ms (${(ring.bytes_per_step / 1e6).toFixed(1)} MB/step/worker)  speedup ${(ring.step_ms / lv.step_ms).toFixed(2)}x`);
}
const out = { device, date: new Date().toISOString(), kernels, distributed: dist };
mkdirSync(path.join(root, 'bench/results'), { recursive: true });
const file = path.join(root, `bench/results/cpu-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${path.relative(root, file)}`);
