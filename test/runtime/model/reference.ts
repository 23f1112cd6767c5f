// An independent, naive float64 implementation of the cross-attention stack and its MSE loss, written
// straight from the math (no shared code with runtime/model), for finite-difference gradient checks.
import type { ModelShape } from '../../../runtime/model/presets.js';

export interface RefProblem {
  shape: ModelShape;
  batch: number;
  lq: number;
  lkv: number;
  eps: number;
}

/** Per layer, in order: normIn, wq, qNorm, wk, kNorm, wv, wo, gate (PyTorch [out, in] layouts). */
export type RefParams = Float64Array[];

function rmsnormRows(x: Float64Array, rows: number, n: number, w: Float64Array, eps: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < n; j++) ss += x[r * n + j]! ** 2;
    const s = 1 / Math.sqrt(ss / n + eps);
    for (let j = 0; j < n; j++) out[r * n + j] = x[r * n + j]! * s * w[j]!;
  }
  return out;
}

/** out[rows, outDim] = x[rows, inDim] · W[outDim, inDim]ᵀ */
function linear(x: Float64Array, rows: number, inDim: number, w: Float64Array, outDim: number): Float64Array {
  const out = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i]! * w[o * inDim + i]!;
      out[r * outDim + o] = s;
    }
  return out;
}

function attention(p: RefProblem, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const { heads: H, kvHeads: Hkv, headDim: D } = p.shape;
  const group = H / Hkv, scale = 1 / Math.sqrt(D);
  const o = new Float64Array(p.batch * p.lq * H * D);
  const s = new Float64Array(p.lkv);
  for (let b = 0; b < p.batch; b++)
    for (let i = 0; i < p.lq; i++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / group);
        const qo = ((b * p.lq + i) * H + h) * D;
        let max = -Infinity;
        for (let j = 0; j < p.lkv; j++) {
          const ko = ((b * p.lkv + j) * Hkv + g) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
          s[j] = dot * scale;
          max = Math.max(max, s[j]!);
        }
        let z = 0;
        for (let j = 0; j < p.lkv; j++) z += (s[j] = Math.exp(s[j]! - max));
        for (let j = 0; j < p.lkv; j++) {
          const vo = ((b * p.lkv + j) * Hkv + g) * D;
          for (let d = 0; d < D; d++) o[qo + d] += (s[j]! / z) * v[vo + d]!;
        }
      }
  return o;
}

export function refForward(p: RefProblem, params: RefParams, x: Float64Array, y: Float64Array): Float64Array {
  const { heads: H, kvHeads: Hkv, headDim: D, textHidden: dx, visualHidden: dy, layers } = p.shape;
  const T = p.batch * p.lq, Tkv = p.batch * p.lkv;
  let h = x;
  for (let l = 0; l < layers; l++) {
    const [normIn, wq, qNorm, wk, kNorm, wv, wo, gate] = params.slice(l * 8, l * 8 + 8) as Float64Array[];
    const xn = rmsnormRows(h, T, dx, normIn!, p.eps);
    const q = rmsnormRows(linear(xn, T, dx, wq!, H * D), T * H, D, qNorm!, p.eps);
    const k = rmsnormRows(linear(y, Tkv, dy, wk!, Hkv * D), Tkv * Hkv, D, kNorm!, p.eps);
    const v = linear(y, Tkv, dy, wv!, Hkv * D);
    const a = linear(attention(p, q, k, v), T, H * D, wo!, dx);
    const t = Math.tanh(gate![0]!);
    const next = new Float64Array(h.length);
    for (let i = 0; i < h.length; i++) next[i] = h[i]! + t * a[i]!;
    h = next;
  }
  return h;
}

export function refLoss(p: RefProblem, params: RefParams, x: Float64Array, y: Float64Array, target: Float64Array): number {
  const out = refForward(p, params, x, y);
  let s = 0;
  for (let i = 0; i < out.length; i++) s += (out[i]! - target[i]!) ** 2;
  return s / out.length;
}

/** Central differences of f with respect to every element of `v` (v is restored afterwards). */
export function centralDifferences(v: Float64Array, f: () => number, h = 1e-5): Float64Array {
  const g = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const keep = v[i]!;
    v[i] = keep + h;
    const up = f();
    v[i] = keep - h;
    const down = f();
    v[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
