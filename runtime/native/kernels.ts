// Typed facade over the addon's synchronous kernel surface (exports.kernels): the CPU backend's exact
// attention kernels on host arrays. Meant for tests, references and small tools, not the training path.
import { loadAddon } from './addon.js';

import type { AttnDims, DTypeName } from '../engine/engine.js';

export type { AttnDims };
export type StorageDType = DTypeName;

/** Float32Array for float32; raw bit patterns in a Uint16Array for bfloat16 / float16. */
export type StorageArray = Float32Array | Uint16Array;

export interface AttnBlockOpts {
  lq: number;
  lkv: number;
  /** Global index of K/V row 0 of this block (the mask speaks global indices). */
  kvOffset?: number;
  /** [batch, lq, 2] global [begin, end) of the keys each query row may see; omitted: all. */
  mask?: Int32Array;
}

export interface AttnForwardResult {
  /** [batch, lq, heads, headDim], normalised over this block; 0 for rows that see no key. */
  o: Float32Array;
  /** [batch, heads, lq], natural log; -Infinity for rows that see no key. */
  lse: Float32Array;
}

export interface AttnBackwardResult {
  dq: Float32Array; // [batch, lq, heads, headDim]
  dk: Float32Array; // [batch, lkv, kvHeads, headDim]
  dv: Float32Array; // [batch, lkv, kvHeads, headDim]
}

export interface Kernels {
  attnForward(dims: AttnDims, q: StorageArray, k: StorageArray, v: StorageArray, opts: AttnBlockOpts): AttnForwardResult;
  /** lse is the final (global) LSE and drow = rowsum(dO * O) of the final output, both [batch, heads, lq]. */
  attnBackward(
    dims: AttnDims,
    q: StorageArray,
    k: StorageArray,
    v: StorageArray,
    dout: StorageArray,
    lse: Float32Array,
    drow: Float32Array,
    opts: AttnBlockOpts,
  ): AttnBackwardResult;
  /** Merges (partO, partLse) into (accO, accLse) in place by log-sum-exp. */
  lseMerge(dims: AttnDims, lq: number, accO: Float32Array, accLse: Float32Array, partO: Float32Array, partLse: Float32Array): void;
  /** A float32 partial's (O, dQ) float16 wire form (native/core/partial_wire.h): float16 values and a power-of-two
   * scale per row [B, H, lq]. */
  partialToWire(dims: AttnDims, lq: number, o: Float32Array): { wire: Uint16Array; scale: Float32Array };
  partialFromWire(dims: AttnDims, lq: number, wire: Uint16Array, scale: Float32Array): Float32Array;
  /** drow[b, h, i] = sum over d of dout * out. */
  rowDot(dims: AttnDims, lq: number, dout: StorageArray, out: StorageArray): Float32Array;
  castFromF32(dtype: 'float32', src: Float32Array): Float32Array;
  castFromF32(dtype: 'bfloat16' | 'float16', src: Float32Array): Uint16Array;
  castFromF32(dtype: StorageDType, src: Float32Array): StorageArray;
  castToF32(dtype: StorageDType, src: StorageArray): Float32Array;
  /** Threads of the CPU pool (XATTN_CPU_THREADS, else the hardware's). */
  cpuThreads(): number;
}

export function kernels(): Kernels {
  return loadAddon().kernels as Kernels;
}
