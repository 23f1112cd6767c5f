// Naive fp64 cross-attention (materialised softmax) used as the independent reference for the kernels:
// forward O and natural-log LSE with range masks, backward dQ/dK/dV from the analytic formulas.
// Layouts follow native/core/attn.h: Q/O [B,Lq,H,D], K/V [B,Lkv,Hkv,D], LSE/drow [B,H,Lq], mask [B,Lq,2].

export interface RefDims {
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale?: number;
}

export interface RefBlock {
  lq: number;
  lkv: number;
  /** Global index of K/V row 0; the mask holds global [begin, end) ranges. */
  kvOffset?: number;
  mask?: Int32Array;
}

export interface RefForward {
  o: Float64Array;
  lse: Float64Array;
}

export interface RefBackward {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** rowsum(dO * O), [B,H,Lq] */
  drow: Float64Array;
}

export function softmaxScale(d: RefDims): number {
  return d.scale && d.scale > 0 ? d.scale : 1 / Math.sqrt(d.headDim);
}

const qIndex = (d: RefDims, blk: RefBlock, b: number, i: number, h: number) => ((b * blk.lq + i) * d.heads + h) * d.headDim;
const kvIndex = (d: RefDims, blk: RefBlock, b: number, j: number, hk: number) =>
  ((b * blk.lkv + j) * d.kvHeads + hk) * d.headDim;
const rowIndex = (d: RefDims, blk: RefBlock, b: number, h: number, i: number) => (b * d.heads + h) * blk.lq + i;

function visible(blk: RefBlock, b: number, i: number, j: number): boolean {
  if (!blk.mask) return true;
  const g = (blk.kvOffset ?? 0) + j;
  const m = (b * blk.lq + i) * 2;
  return g >= blk.mask[m] && g < blk.mask[m + 1];
}

function dot(a: Float64Array, ia: number, b: Float64Array, ib: number, n: number): number {
  let s = 0;
  for (let x = 0; x < n; x++) s += a[ia + x] * b[ib + x];
  return s;
}

/** Softmax probabilities of one query row over its visible keys (all zero and lse -inf if none). */
function rowProbs(d: RefDims, blk: RefBlock, q: Float64Array, k: Float64Array, b: number, h: number, i: number) {
  const hk = Math.floor(h / (d.heads / d.kvHeads));
  const scale = softmaxScale(d);
  const s = new Float64Array(blk.lkv).fill(-Infinity);
  let max = -Infinity;
  for (let j = 0; j < blk.lkv; j++) {
    if (!visible(blk, b, i, j)) continue;
    s[j] = scale * dot(q, qIndex(d, blk, b, i, h), k, kvIndex(d, blk, b, j, hk), d.headDim);
    max = Math.max(max, s[j]);
  }
  const p = new Float64Array(blk.lkv);
  if (max === -Infinity) return { p, lse: -Infinity, hk };
  let sum = 0;
  for (let j = 0; j < blk.lkv; j++) sum += s[j] === -Infinity ? 0 : Math.exp(s[j] - max);
  const lse = max + Math.log(sum);
  for (let j = 0; j < blk.lkv; j++) p[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - lse);
  return { p, lse, hk };
}

export function refForward(d: RefDims, blk: RefBlock, q: Float64Array, k: Float64Array, v: Float64Array): RefForward {
  const o = new Float64Array(d.batch * blk.lq * d.heads * d.headDim);
  const lse = new Float64Array(d.batch * d.heads * blk.lq);
  for (let b = 0; b < d.batch; b++)
    for (let h = 0; h < d.heads; h++)
      for (let i = 0; i < blk.lq; i++) {
        const { p, lse: l, hk } = rowProbs(d, blk, q, k, b, h, i);
        lse[rowIndex(d, blk, b, h, i)] = l;
        const oi = qIndex(d, blk, b, i, h);
        for (let j = 0; j < blk.lkv; j++) {
          if (p[j] === 0) continue;
          const vj = kvIndex(d, blk, b, j, hk);
          for (let x = 0; x < d.headDim; x++) o[oi + x] += p[j] * v[vj + x];
        }
      }
  return { o, lse };
}

/** Gradients of sum(O * dout) with respect to q, k, v (P = softmax, dS = P * (dP - rowsum(dO * O))). */
export function refBackward(
  d: RefDims,
  blk: RefBlock,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  dout: Float64Array,
): RefBackward {
  const { o } = refForward(d, blk, q, k, v);
  const scale = softmaxScale(d);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const drow = new Float64Array(d.batch * d.heads * blk.lq);
  for (let b = 0; b < d.batch; b++)
    for (let h = 0; h < d.heads; h++)
      for (let i = 0; i < blk.lq; i++) {
        const qi = qIndex(d, blk, b, i, h);
        const D = dot(dout, qi, o, qi, d.headDim);
        drow[rowIndex(d, blk, b, h, i)] = D;
        const { p, hk } = rowProbs(d, blk, q, k, b, h, i);
        for (let j = 0; j < blk.lkv; j++) {
          if (p[j] === 0) continue;
          const kj = kvIndex(d, blk, b, j, hk);
          const dp = dot(dout, qi, v, kj, d.headDim);
          const ds = p[j] * (dp - D);
          for (let x = 0; x < d.headDim; x++) {
            dq[qi + x] += scale * ds * k[kj + x];
            dk[kj + x] += scale * ds * q[qi + x];
            dv[kj + x] += p[j] * dout[qi + x];
          }
        }
      }
  return { dq, dk, dv, drow };
}

/** Seeded PRNG (mulberry32) so every test sees the same inputs on every run. */
export { rng } from '../../runtime/worker/random.js';

/** n standard normal values (Box-Muller) times std, as float32. */
export function randomNormal(n: number, next: () => number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - next();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** Element counts of the tensors of a block. */
export function sizes(d: RefDims, blk: RefBlock) {
  return {
    q: d.batch * blk.lq * d.heads * d.headDim,
    kv: d.batch * blk.lkv * d.kvHeads * d.headDim,
    rows: d.batch * d.heads * blk.lq,
  };
}
