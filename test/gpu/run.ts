// npm run test:gpu — checks for a machine with CUDA GPUs (CI has none). Plain Node (no vitest), so it
// also runs as a bundle (node dist/test-gpu.mjs) where node_modules is absent.
//  1. The CUDA engine at P = 1 and, with 2+ (4+) GPUs, LV-XAttn and Ring over NCCL at P = 2 (and 4):
//     forward and backward against the fp64 reference (GQA 1/4/8, d64/d128, odd lengths, fully masked
//     rows).
//     At P = 2 also with NCCL's kernels instead of copy engines (XATTN_COPY_ENGINE=0) and with copy-engine
//     pieces of 256 bytes (every transfer in many pieces through two slots: the credit waits), and with
//     the owner's block forced into two pieces and blocks in two row chunks, and with the blocks gathered
//     (sent to every rank at once, one launch for all: the default from P = 4 on, forced at P = 2); at P = 4
//     also around the ring (XATTN_LV_GATHER=0).
//  2. P = 2 equals single-GPU attention.
// The per-op kernel checks against the CPU backend are the standalone xattn_cuda_check program.
// `--paths <text>` runs only the P = 2 variants whose label contains it (a short check when device time is
// scarce); P = 1 and the default P = 2 always run.
import { Engine } from '../../runtime/engine/engine.js';
import type { DistCase } from '../fixtures/dist-case.js';
import { runDistAttentionRank, type RankResults } from '../fixtures/dist-attention-rank.js';
import { caseErrors } from '../fixtures/dist-compare.js';
import { sendToParent, spawnRanks } from '../fixtures/spawn-ranks.js';

const CASES: DistCase[] = [
  { dims: { batch: 1, heads: 8, kvHeads: 2, headDim: 128, dtype: 'bfloat16' }, lq: 67, lkv: 1531, masked: true, seed: 21 },
  { dims: { batch: 2, heads: 4, kvHeads: 4, headDim: 64, dtype: 'float16' }, lq: 33, lkv: 777, masked: false, seed: 22 },
  { dims: { batch: 1, heads: 8, kvHeads: 1, headDim: 64, dtype: 'bfloat16' }, lq: 5, lkv: 2049, masked: true, seed: 23 },
  { dims: { batch: 1, heads: 4, kvHeads: 1, headDim: 128, dtype: 'float16' }, lq: 129, lkv: 301, masked: true, seed: 24 },
  { dims: { batch: 1, heads: 8, kvHeads: 2, headDim: 128, dtype: 'bfloat16' }, lq: 601, lkv: 1000, masked: true, seed: 25 },
];

// Relative to the largest |expected|: the GPU kernels feed bf16/fp16 probabilities to the tensor cores,
// so errors are a few storage ulps (bf16 2^-8, fp16 2^-11) of the largest value.
const TOL: Record<string, { o: number; lse: number; grad: number }> = {
  bfloat16: { o: 1e-2, lse: 1e-4, grad: 3e-2 },
  float16: { o: 2e-3, lse: 1e-4, grad: 6e-3 },
};

if (process.argv[2] === 'rank') {
  await sendToParent(await runDistAttentionRank(CASES, 'cuda'));
} else {
  let passed = 0, failed = 0;
  const check = (ok: boolean, what: string) => {
    ok ? passed++ : failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  };
  const gpus = Engine.cudaDeviceCount();
  console.log(`${gpus} CUDA device(s): ${Array.from({ length: gpus }, (_, i) => Engine.cudaDeviceName(i)).join(', ')}`);
  check(gpus >= 1, 'a CUDA device is visible to the addon (built with CUDA)');
  const runs: Record<number, RankResults[]> = {};
  // P = 2 transfer paths beside the default (copy engines where the GPUs can map each other's memory).
  const PATHS: Record<string, Record<string, string>> = {
    'NCCL kernels': { XATTN_COPY_ENGINE: '0' },
    'copy engines, 256 B pieces': { XATTN_CE_SLOT_BYTES: '256' },
    'own block in two pieces, 2 row chunks': { XATTN_LV_FIRST_SHARE: '0.4', XATTN_LV_CHUNKS: '2' },
    'own rows stacked on the last visit': { XATTN_LV_STACK: '1' },
    'own rows stacked after a first piece': { XATTN_LV_STACK: '1', XATTN_LV_FIRST_SHARE: '0.3' },
    'blocks gathered': { XATTN_LV_GATHER: '1' },
    'blocks gathered after a first piece': { XATTN_LV_GATHER: '1', XATTN_LV_FIRST_SHARE: '0.3' },
    'blocks gathered through NCCL kernels': { XATTN_LV_GATHER: '1', XATTN_COPY_ENGINE: '0' },
  };
  // Whether every rank's LV-XAttn calls (float32 and float16 partials) gathered their blocks, both passes.
  const allGathered = (ranks: RankResults[], want: boolean) =>
    ranks.every((r) => r.results.every((res) => ['lv-xattn', 'lv-xattn f16 partials'].every((v) => res[v]!.gathered.every((g) => g === want))));
  const pathsAt = process.argv.indexOf('--paths');
  const only = pathsAt > 0 ? process.argv[pathsAt + 1] ?? '' : '';
  const chosenPaths = Object.entries(PATHS).filter(([label]) => label.includes(only));
  if (only) console.log(`--paths ${only}: ${chosenPaths.map(([l]) => l).join('; ') || 'no variant matches'}`);
  const checkRun = (label: string, ranks: RankResults[]) =>
    CASES.forEach((c, ci) => {
      const tol = TOL[c.dims.dtype]!;
      for (const [algo, e] of Object.entries(caseErrors(c, ci, ranks))) {
        const what = `${label} ${algo} ${c.dims.dtype} H${c.dims.heads}/${c.dims.kvHeads} d${c.dims.headDim} ${c.lq}x${c.lkv}${c.masked ? ' masked' : ''}`;
        const errs = `O ${e.o.toExponential(2)} LSE ${e.lse.toExponential(2)} dQ ${e.dq.toExponential(2)} dK ${e.dk.toExponential(2)} dV ${e.dv.toExponential(2)}`;
        check(e.o <= tol.o && e.lse <= tol.lse && e.dq <= tol.grad && e.dk <= tol.grad && e.dv <= tol.grad && (!c.masked || e.fullyMaskedRows > 0), `${what}: ${errs}`);
      }
    });
  const spawn = (P: number, env: Record<string, string> = {}) =>
    spawnRanks<RankResults>(process.argv[1]!, P, env, { args: ['rank'], execArgv: process.execArgv, timeoutMs: 150_000 });
  for (const P of [1, 2, 4].filter((p) => p <= gpus)) {
    runs[P] = await spawn(P);
    if (P > 1) console.log(`P=${P} transfers: ${runs[P]![0]!.transportPath}`);
    checkRun(`P=${P}`, runs[P]!);
    if (P === 4) {
      check(allGathered(runs[4]!, true), 'P=4: LV-XAttn gathered its blocks');
      const ring = await spawn(4, { XATTN_LV_GATHER: '0' });
      check(allGathered(ring, false), 'P=4 XATTN_LV_GATHER=0: LV-XAttn kept its blocks on the ring');
      checkRun('P=4 around the ring', ring);
    }
  }
  if (runs[2]) {
    const ce = runs[2][0]!.transportPath.includes('copy engines to');
    if (!ce) console.log('copy engines are not linked on this machine (see the path above): the copy-engine variants run over NCCL');
    for (const [label, env] of chosenPaths) {
      const ranks = await spawn(2, env);
      if (env.XATTN_LV_STACK) check(ranks.every((r) => r.results.every((res) => res['lv-xattn']!.stackedRows)), 'XATTN_LV_STACK=1: every LV-XAttn backward ran its own rows stacked');
      if (env.XATTN_LV_GATHER) check(allGathered(ranks, true), 'XATTN_LV_GATHER=1: LV-XAttn gathered its blocks at P = 2');
      if (env.XATTN_COPY_ENGINE) check(!ranks[0]!.transportPath.includes('copy engines to'), `XATTN_COPY_ENGINE=0 sends through NCCL (${ranks[0]!.transportPath})`);
      checkRun(`P=2 ${label}`, ranks);
    }
  }
  if (runs[2]) {
    // The distributed result must match single-GPU attention (same kernels, different merge order).
    CASES.forEach((c, ci) => {
      for (const algo of ['lv-xattn', 'ring']) {
        const one = runs[1]![0]!.results[ci]![algo]!;
        const two = [...runs[2]!].sort((a, b) => a.rank - b.rank).map((r) => r.results[ci]![algo]!);
        const lseOne = one.lse!;
        const lseTwo = two[0]!.lse!.concat(two[1]!.lse!);
        // LSE is [B, H, Lq]: compare as multisets of rows is overkill; with B = 1 the shards concatenate per head.
        if (c.dims.batch !== 1) continue;
        const H = c.dims.heads, lq0 = two[0]!.lse!.length / H, lq1 = two[1]!.lse!.length / H;
        let worst = 0;
        for (let h = 0; h < H; h++)
          for (let i = 0; i < lq0 + lq1; i++) {
            const a = lseOne[h * (lq0 + lq1) + i]!;
            const b = i < lq0 ? two[0]!.lse![h * lq0 + i]! : two[1]!.lse![h * lq1 + i - lq0]!;
            worst = a === b ? worst : Math.max(worst, Math.abs(a - b));
          }
        check(worst <= 1e-4 && lseTwo.length === lseOne.length, `P=2 ${algo} LSE equals single-GPU (case ${ci}, max diff ${worst.toExponential(2)})`);
      }
    });
  }
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
