// One rank's training state (weights, gradients, AdamW moments, data) and one training step:
// batch -> forward/backward -> an all-reduce of every gradient (summed: each rank's gradient is its
// share of the global mean loss, so P ranks compute exactly what one would; on NCCL each layer's sum
// starts as soon as its backward ends) -> clip -> AdamW.
import type { XAttnJob } from '../../crds/types.js';
import type { DistCall, DTypeName, Engine, Tensor } from '../engine/engine.js';
import { makeContext, type ModelContext } from '../model/context.js';
import { lossAndGrads } from '../model/objective.js';
import { ParamSet } from '../model/params.js';
import { resolveModel, type ModelShape } from '../model/presets.js';
import { mixSeed } from '../model/seeds.js';
import { stackInference } from '../model/stack.js';
import type { DataSource, Rows, SourceBatch } from '../data/source.js';
import { safetensorsSource } from '../data/safetensors-source.js';
import { syntheticSource } from '../data/synthetic.js';
import { GradientReducer } from './gradient-reducer.js';
import { AdamW, DEFAULT_OPTIMIZER, type OptimizerConfig } from './optimizer.js';

/** The teacher's gates: large enough that its layers matter (tanh(1) ≈ 0.76). */
const TEACHER_GATE = 1;

export interface StepOutcome {
  loss: number;
  lr: number;
  gradNorm: number;
  /** Some rank asked to stop (SIGTERM) before this step's all-reduce. */
  stop: boolean;
  /** Seconds preparing the batch (data read or teacher forward), not part of the step time. */
  batchSeconds: number;
  seconds: number;
  /** Device seconds of the step's attention calls (transfer waits on the device included). */
  attentionSeconds: number;
}

export function trainCall(job: XAttnJob, m: ModelShape): DistCall {
  const w = job.spec.workload;
  return {
    algorithm: job.spec.attention.algorithm,
    dims: { batch: w.batch, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim, dtype: w.dtype },
    lqTotal: w.textTokens,
    lkvTotal: w.visualTokens,
    partials: job.spec.attention.partials,
    keptForwards: m.layers, // every layer's forward runs before the first backward
  };
}

export class Trainer {
  private constructor(
    readonly ctx: ModelContext,
    readonly params: ParamSet,
    readonly grads: ParamSet,
    public opt: AdamW,
    private source: DataSource,
    /** The teacher never trains: it keeps its compute view (and the masters the view shares). */
    private teacher: { ctx: ModelContext; master: ParamSet; view: ParamSet; release: () => void } | undefined,
    /** Elements of the global batch's output: the loss is a mean over all of them. */
    readonly normalizer: number,
  ) {}

  static async create(engine: Engine, job: XAttnJob, rank: number, worldSize: number, o: { recomputeKV?: boolean; exactProfile?: boolean } = {}): Promise<Trainer> {
    const shape = resolveModel(job.spec.model);
    const w = job.spec.workload;
    const call = trainCall(job, shape);
    const recomputeKV = o.recomputeKV ?? job.spec.attention.recomputeKV;
    const { keepValues } = job.spec.attention;
    // The model's attention calls are timed on the device (attentionMs); the teacher's are data, not training.
    const ctx = makeContext(engine, shape, { call: { ...call, timed: true }, rank, worldSize, recomputeKV, keepValues, exactProfile: o.exactProfile });
    const params = await ParamSet.init(engine, shape, { seed: mixSeed(w.seed, 1), gate: 0 });
    const grads = await ParamSet.zerosLike(engine, params.specs);
    const cfg: OptimizerConfig = { ...DEFAULT_OPTIMIZER, peakLr: w.learningRate, warmupSteps: w.warmupSteps };
    const opt = await AdamW.create(engine, params.specs, cfg);
    const layout = { batch: w.batch, textTokens: w.textTokens, visualTokens: w.visualTokens, textHidden: shape.textHidden, visualHidden: shape.visualHidden, rank, worldSize };
    let teacher: Trainer['teacher'];
    let source: DataSource;
    if (w.data.source === 'safetensors') {
      source = safetensorsSource(w.data.path!, layout);
    } else {
      source = syntheticSource(w.seed, layout);
      // Forward only: no backward would use a kept Q.
      const tctx = makeContext(engine, shape, { call, rank, worldSize, recomputeKV: true, keepQuery: false });
      const master = await ParamSet.init(engine, shape, { seed: mixSeed(w.seed, 2), gate: TEACHER_GATE });
      teacher = { ctx: tctx, master, ...(await master.computeView(tctx.nn, w.dtype)) };
    }
    return new Trainer(ctx, params, grads, opt, source, teacher, w.batch * w.textTokens * shape.textHidden);
  }

  get dataDescription(): string {
    return this.source.description;
  }

  private async upload(b: SourceBatch): Promise<{ x: Tensor; y: Tensor; target: Tensor }> {
    const { engine, nn, shape, call, lq, lkv, ledger } = this.ctx;
    const B = call.dims.batch;
    const materialize = async (r: Rows, shape: number[], dtype: DTypeName = 'float32') =>
      ledger.track(await (r instanceof Float32Array ? engine.upload(r, shape, dtype) : nn.randn(shape, r, dtype)));
    const x = await materialize(b.x, [B, lq, shape.textHidden]);
    // y only feeds GEMMs: it lives in their input dtype (half the memory of float32 in bf16).
    const y = await materialize(b.y, [B * lkv, shape.visualHidden], call.dims.dtype);
    if (b.target) return { x, y, target: await materialize(b.target, [B, lq, shape.textHidden]) };
    const t = this.teacher!;
    const target = await stackInference(t.ctx, t.view, x, y);
    return { x, y, target: ledger.track(t.ctx.ledger.untrack(target)) };
  }

  /** Runs 1-based step `step`; `stop` is this rank's stop request, OR-ed across ranks. */
  async step(step: number, stop: boolean): Promise<StepOutcome> {
    const { nn, ledger, profile } = this.ctx;
    // The batch (a data read, or the teacher's forward for synthetic targets) is timed apart from the step.
    // On CUDA ops resolve once queued, so its host time says little: stopwatch marks around it take its
    // device time instead, read once the step's own waits have passed them. A wait for the batch here
    // would cost the step the head start its queued ops give the host.
    const { engine } = this.ctx;
    const d0 = performance.now();
    await engine.stopwatchMark();
    const batch = await this.upload(this.source.batch(step));
    await engine.stopwatchMark();
    await profile.settle(); // exact shares: the batch's device time stays out of the first timed op
    // The weights as the GEMMs take them, refreshed every step from the float32 masters.
    const weights = await profile.time('other', this.params.computeView(nn, this.ctx.call.dims.dtype));
    const reducer = new GradientReducer(nn);
    const layerGrads = (l: number) => reducer.add(Object.values(this.grads.layer(l)));
    const r = await lossAndGrads(this.ctx, weights.view, this.grads, batch, this.normalizer, { onLayerGrads: layerGrads }).finally(weights.release);
    ledger.free(batch.x, batch.y, batch.target, r.dx, r.dy);
    // Ops resolve once queued on CUDA: let the step's compute finish first, so the wait timed below is
    // the gradient reduction left over after it, not compute still in the queue.
    await engine.synchronize();
    const a0 = performance.now();
    const red = await reducer.finish([r.sum, stop ? 1 : 0]);
    await profile.settle();
    const wall = (performance.now() - a0) / 1000;
    profile.addComm('all_reduce', 'comm', wall, red.bytesSent, wall);
    const { lr, gradNorm } = await profile.time('other', this.opt.step(nn, this.params, this.grads, step));
    const total = (performance.now() - d0) / 1000;
    const batchSeconds = Math.min(total, (await engine.stopwatchMs()) / 1000);
    const attentionSeconds = (await engine.attentionMs()) / 1000; // long done: the gradient norm was read
    return {
      loss: red.extras[0]! / this.normalizer,
      lr,
      gradNorm,
      stop: red.extras[1]! > 0,
      batchSeconds,
      seconds: total - batchSeconds,
      attentionSeconds,
    };
  }

  /** Replaces the optimizer state (resume). */
  replaceOptimizer(opt: AdamW): void {
    this.opt.dispose();
    this.opt = opt;
  }

  dispose(): void {
    this.source.close();
    this.params.dispose();
    this.grads.dispose();
    this.opt.dispose();
    this.teacher?.release();
    this.teacher?.master.dispose();
  }
}
