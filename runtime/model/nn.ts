// Typed facade over the addon's model ops (native/binding/nn.cc). Every op runs on the engine's native
// worker thread, in order with attention calls, and returns a Promise.
import type { DTypeName, Engine, Tensor } from '../engine/engine.js';
import { loadAddon } from '../native/addon.js';

export interface GemmOpts {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** With gemmInto: C += alpha·op(A)·op(B) instead of C = alpha·op(A)·op(B). */
  accumulate?: boolean;
  outShape?: number[];
  outDtype?: DTypeName;
}

export interface AdamWGroup {
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
  weightDecay: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based optimizer step (bias correction). */
  step: number;
}

export interface AllReduceResult {
  extras: number[];
  bytesSent: number;
  seconds: number;
}

/** Where a tensor's rows sit in a larger whole: [batch, rows, width] starting at rowOffset of [batch, totalRows, width]. */
export interface RandnSpec {
  /** 32-bit stream key (mixSeed). */
  key: number;
  std?: number;
  width: number;
  rows: number;
  rowOffset?: number;
  totalRows?: number;
}

/** The model ops bound to one engine. Argument errors reject like run-time errors (code XATTN_E_*). */
export interface Nn {
  /** C = alpha·op(A)·op(B), a new [m, n] tensor (or outShape/outDtype). */
  gemm(a: Tensor, b: Tensor, o: GemmOpts): Promise<Tensor>;
  /** The same into an existing tensor (added to it with accumulate). */
  gemmInto(out: Tensor, a: Tensor, b: Tensor, o: GemmOpts): Promise<void>;
  rmsnorm(x: Tensor, w: Tensor, o?: { eps?: number; outDtype?: DTypeName; outShape?: number[] }): Promise<{ y: Tensor; rstd: Tensor }>;
  /** A new dx (float32, or outDtype: rounded once, as the GEMM inputs take it); dw is accumulated into. */
  rmsnormBackward(x: Tensor, w: Tensor, rstd: Tensor, dy: Tensor, dw: Tensor, o?: { eps?: number; outDtype?: DTypeName }): Promise<Tensor>;
  /** The same, adding dx into an existing tensor. */
  rmsnormBackwardInto(dx: Tensor, x: Tensor, w: Tensor, rstd: Tensor, dy: Tensor, dw: Tensor, o?: { eps?: number }): Promise<void>;
  gatedResidual(x: Tensor, a: Tensor, gate: Tensor): Promise<Tensor>;
  /** da; dgate is accumulated into. */
  gatedResidualBackward(dout: Tensor, a: Tensor, gate: Tensor, dgate: Tensor): Promise<Tensor>;
  /** sum((pred - target)²) and grad = 2·gradScale·(pred - target). */
  squaredError(pred: Tensor, target: Tensor, gradScale: number): Promise<{ sum: number; grad: Tensor }>;
  sumSquares(ts: Tensor[]): Promise<number>;
  axpy(y: Tensor, x: Tensor, alpha: number): Promise<void>;
  scale(ts: Tensor[], alpha: number): Promise<void>;
  fill(ts: Tensor[], value: number): Promise<void>;
  cast(x: Tensor, dtype: DTypeName, shape?: number[]): Promise<Tensor>;
  adamw(groups: AdamWGroup[], h: AdamWHyper): Promise<void>;
  /** A new tensor (float32 unless dtype says otherwise) of std·N(0, 1) samples keyed by (key, element index in the whole), so each
   * shard of a whole holds the same values on every backend and rank. */
  randn(shape: number[], spec: RandnSpec, dtype?: DTypeName): Promise<Tensor>;
  /** Sums every tensor (in place) and the host scalars across ranks, in one collective. */
  allReduceSum(ts: Tensor[], extras?: number[]): Promise<AllReduceResult>;
  /** Starts summing the tensors across ranks in the background where the transport can (NCCL): work
   * queued meanwhile overlaps it until allReduceWait. posted = false: it cannot; use allReduceSum. */
  allReducePost(ts: Tensor[]): Promise<{ posted: boolean; handle: number; bytesSent: number }>;
  allReduceWait(handle: number): Promise<void>;
}

type NativeNn = Record<string, (engine: unknown, ...args: any[]) => any>;

export function bindNn(engine: Engine): Nn {
  const native = loadAddon().nn as NativeNn | undefined;
  if (!native) throw new Error('this build of the addon has no model ops (addon.nn): rebuild it with npm run build:native');
  const e = engine.native;
  return {
    gemm: async (a, b, o) => native.gemm(e, a, b, o),
    gemmInto: async (out, a, b, o) => native.gemm(e, a, b, { ...o, out }),
    rmsnorm: async (x, w, o = {}) => native.rmsnorm(e, x, w, o),
    rmsnormBackward: async (x, w, rstd, dy, dw, o = {}) => native.rmsnormBackward(e, x, w, rstd, dy, dw, o),
    rmsnormBackwardInto: async (dx, x, w, rstd, dy, dw, o = {}) => native.rmsnormBackward(e, x, w, rstd, dy, dw, { ...o, dx }),
    gatedResidual: async (x, a, g) => native.gatedResidual(e, x, a, g),
    gatedResidualBackward: async (d, a, g, dg) => native.gatedResidualBackward(e, d, a, g, dg),
    squaredError: async (p, t, s) => native.squaredError(e, p, t, s),
    sumSquares: async (ts) => native.sumSquares(e, ts),
    axpy: async (y, x, alpha) => native.axpy(e, y, x, alpha),
    scale: async (ts, alpha) => native.scale(e, ts, alpha),
    fill: async (ts, v) => native.fill(e, ts, v),
    cast: async (x, dtype, shape) => (shape ? native.cast(e, x, dtype, shape) : native.cast(e, x, dtype)),
    adamw: async (g, h) => native.adamw(e, g, h),
    allReduceSum: async (ts, extras = []) => native.allReduceSum(e, ts, extras),
    allReducePost: async (ts) => native.allReducePost(e, ts),
    allReduceWait: async (h) => native.allReduceWait(e, h),
    randn: async (shape, spec, dtype = 'float32') => {
      const t = await engine.empty(shape, dtype);
      try {
        await native.randn(e, t, spec);
        return t;
      } catch (err) {
        t.dispose();
        throw err;
      }
    },
  };
}
