// Typed facade over the native engine: tensors live in the addon; every call returns a Promise and
// runs on the engine's own native thread, so the event loop stays free during long steps.
import { loadAddon } from '../native/addon.js';

export type DTypeName = 'float32' | 'bfloat16' | 'float16';
export type TensorDType = DTypeName | 'int32';
export type AlgorithmName = 'lv-xattn' | 'ring';
export type BackendName = 'cpu' | 'cuda';

export interface Tensor {
  readonly shape: number[];
  readonly dtype: TensorDType | 'disposed';
  download(): Promise<Float32Array | Uint16Array | Int32Array>;
  /** Copies the tensor's bytes into `target` (exactly that many bytes) on the engine's thread, so the
   * event loop copies nothing; over a SharedArrayBuffer, worker threads can read it where it lies. */
  downloadInto(target: ArrayBufferView): Promise<void>;
  dispose(): void;
}

export interface AttnDims {
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Softmax scale; omitted or 0 means 1 / sqrt(headDim). */
  scale?: number;
  dtype: DTypeName;
}

export interface DistCall {
  algorithm: AlgorithmName;
  dims: AttnDims;
  lqTotal: number;
  lkvTotal: number;
  /** false: compute every step on the local blocks, moving nothing (the no-communication bound). */
  comm?: boolean;
  /** How LV-XAttn sends partial results between ranks (the forward's O, the backward's dQ): 'float32' as
   * computed, 'float16' with a power-of-two scale per row, half the bytes (it adds at most 2^-11 relative
   * error per value; a bf16 output's own rounding is 2^-9), or 'auto' (default): float16 for a pass whose
   * trip over the probed link would take at least 0.6 of its compute, where the attention is 16-bit.
   * Ring ignores it. */
  partials?: PartialPrecision;
  /** LV-XAttn keeps the Q blocks a forward receives for the backward of the same Q tensor, for the last 8
   * forwards at least (`XATTN_LV_KEEP_Q` fixes the number): a caller that runs more forwards before their
   * backwards (a model's layers) asks for room for them. */
  keptForwards?: number;
  /** Add this call's device time (from its first queued op to its last, transfer waits included) to what
   * attentionMs() reports: on CUDA the call resolves once queued, so its host time says little. */
  timed?: boolean;
}

/** The tensors of a forward; keepQuery: false where no backward of this Q follows (inference, a teacher),
 * so LV-XAttn keeps none of its blocks. */
export interface ForwardInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask?: Tensor | null;
  keepQuery?: boolean;
}

export type PartialPrecision = 'auto' | WirePrecision;
/** How partial results actually travelled (CommStats.partials). */
export type WirePrecision = 'float32' | 'float16';
/** How LV-XAttn's partials travelled in a forward and its backward. */
export interface PassPartials {
  forward: WirePrecision;
  backward: WirePrecision;
}
/** Whether LV-XAttn gathered its blocks in a forward and its backward (CommStats.gatheredBlocks). */
export interface PassGathered {
  forward: boolean;
  backward: boolean;
}

export interface CommStats {
  bytesSent: number;
  commWaitSeconds: number;
  /** Chunks each travelling text block was sent in (LV-XAttn pipelines a slow link's transfers); 1 otherwise. */
  rowChunks: number;
  /** How LV-XAttn's partial results travelled in this call ('float32' where none did). */
  partials: WirePrecision;
  /** An LV-XAttn backward that ran its own text rows in one launch with the last visiting block's. */
  stackedRows: boolean;
  /** An LV-XAttn call that sent its block to every rank at once and ran all it received in one launch. */
  gatheredBlocks: boolean;
}

export interface ForwardResult extends CommStats {
  o: Tensor;
  lse: Tensor;
}

export interface BackwardResult extends CommStats {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

export interface EngineInfo {
  backend: string;
  transport: string;
  /** How point-to-point transfers travel, e.g. "nccl, copy engines to 1 of 1 peers" or "tcp". */
  transportPath: string;
  rank: number;
  worldSize: number;
  device: number;
  /** Device memory in use (CUDA), 0 on CPU. */
  memoryUsed: number;
  /** Most bytes held in this engine's tensors at once since the last reset (CUDA), 0 on CPU. */
  memoryPeak: number;
  /** The device's memory (CUDA), 0 on CPU. */
  memoryTotal: number;
  /** The ranks' ring-exchange bandwidth in GB/s, probed at the first distributed call (the same on every
   * rank; LV-XAttn picks its pipelining from it); 0 before that and at P = 1. */
  linkGbps: number;
  /** The backend's nominal attention rate, which LV-XAttn's plans weigh transfers against (0 once closed). */
  attentionFlopsPerSecond: number;
}

interface NativeEngine {
  info(opts?: { resetPeak?: boolean }): EngineInfo;
  useTcp(transport: unknown): void;
  ncclUniqueId(): Buffer;
  useNccl(opts: { id: Buffer; rank: number; worldSize: number; timeoutMs: number }): Promise<void>;
  upload(data: Float32Array | Uint16Array | Int32Array, shape: number[], dtype: TensorDType): Promise<Tensor>;
  empty(shape: number[], dtype: TensorDType): Promise<Tensor>;
  /** Like every op, resolves once queued on CUDA (outputs are ordered on the device's stream); a download
   * or synchronize() waits for the result. */
  attentionForward(args: DistCall & ForwardInputs): Promise<ForwardResult>;
  attentionBackward(
    args: DistCall & { q: Tensor; k: Tensor; v: Tensor; o: Tensor; lse: Tensor; dout: Tensor; mask?: Tensor | null },
  ): Promise<BackwardResult>;
  allReduce(t: Tensor): Promise<void>;
  measureLink(bytes: number, iters: number): Promise<number>;
  synchronize(): Promise<void>;
  stopwatchMark(): Promise<void>;
  stopwatchMs(): Promise<number>;
  attentionMs(): Promise<number>;
  close(): Promise<void>;
}

export class Engine {
  private constructor(readonly native: NativeEngine) {}

  static create(opts: { backend?: BackendName; device?: number } = {}): Engine {
    const addon = loadAddon();
    return new Engine(new addon.Engine({ backend: opts.backend ?? 'cpu', device: opts.device ?? 0 }) as NativeEngine);
  }

  /** True when this build of the addon has the CUDA backend. */
  static cudaBuilt(): boolean {
    return Boolean(loadAddon().cudaBuilt);
  }

  /** Usable CUDA devices (0 without the CUDA build, a driver or a GPU). */
  static cudaDeviceCount(): number {
    return loadAddon().cudaDeviceCount() as number;
  }

  static cudaDeviceName(device: number): string {
    return loadAddon().cudaDeviceName(device) as string;
  }

  /** resetPeak: start a new high-water mark after reading this one. */
  info(opts: { resetPeak?: boolean } = {}): EngineInfo {
    return this.native.info(opts);
  }
  useTcp(transport: unknown): void {
    this.native.useTcp(transport);
  }
  ncclUniqueId(): Buffer {
    return this.native.ncclUniqueId();
  }
  useNccl(opts: { id: Buffer; rank: number; worldSize: number; timeoutMs: number }): Promise<void> {
    return this.native.useNccl(opts);
  }
  upload(data: Float32Array | Uint16Array | Int32Array, shape: number[], dtype: TensorDType): Promise<Tensor> {
    return this.native.upload(data, shape, dtype);
  }
  empty(shape: number[], dtype: TensorDType): Promise<Tensor> {
    return this.native.empty(shape, dtype);
  }
  attentionForward(call: DistCall, t: ForwardInputs): Promise<ForwardResult> {
    return this.native.attentionForward({ ...call, ...t });
  }
  attentionBackward(
    call: DistCall,
    t: { q: Tensor; k: Tensor; v: Tensor; o: Tensor; lse: Tensor; dout: Tensor; mask?: Tensor | null },
  ): Promise<BackwardResult> {
    return this.native.attentionBackward({ ...call, ...t });
  }
  allReduce(t: Tensor): Promise<void> {
    return this.native.allReduce(t);
  }
  /** Resolves when all queued device work has finished (ops resolve when queued on CUDA, not when done). */
  synchronize(): Promise<void> {
    return this.native.synchronize();
  }
  /** Marks the device's stream for a stopwatch, in order with the ops queued around it (for benchmarks). */
  stopwatchMark(): Promise<void> {
    return this.native.stopwatchMark();
  }
  /** Ms on the device between the last two stopwatch marks, as the stream reached them (waits for the
   * second): device time, like CUDA events, without the host's wait for the result. */
  stopwatchMs(): Promise<number> {
    return this.native.stopwatchMs();
  }
  /** Device ms of the `timed` attention calls since the last reading (waits for the last of them to end). */
  attentionMs(): Promise<number> {
    return this.native.attentionMs();
  }
  /** Seconds per ring exchange of `bytes` (send to rank+1, receive from rank-1) over the transport. */
  measureLink(bytes: number, iters: number): Promise<number> {
    return this.native.measureLink(bytes, iters);
  }
  /** Releases the device, the transport (NCCL teardown is collective) and the engine's thread. */
  close(): Promise<void> {
    return this.native.close();
  }
}

/** Contiguous sharding, identical to native/core/shard.h. */
export function shardOf(total: number, parts: number, index: number): { begin: number; length: number } {
  const base = Math.floor(total / parts);
  const extra = total % parts;
  return { begin: index * base + Math.min(index, extra), length: base + (index < extra ? 1 : 0) };
}

/** Attention FLOPs of one forward over the whole problem (4·B·H·Lq·Lkv·D); backward is 2.5× this. */
export function attentionFlops(d: Pick<AttnDims, 'batch' | 'heads' | 'headDim'>, lq: number, lkv: number): number {
  return 4 * d.batch * d.heads * lq * lkv * d.headDim;
}
