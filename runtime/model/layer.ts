// One Llama-3.2-Vision-style cross-attention layer, forward and backward:
//   q = q_norm(Wq · rmsnorm(x)),  k = k_norm(Wk · y),  v = Wv · y,
//   o = distributed attention(q, k, v)   (GQA, sequence-sharded),   out = x + tanh(gate) · (Wo · o).
// Tokens are rows: x [B·Lq, textHidden], y [B·Lkv, visualHidden]; q/o [B, Lq, H, D], k/v [B, Lkv, Hkv, D].
// Mixed precision: the GEMMs take their inputs in the attention dtype (y, the normed x, the projection
// weights of the compute view, and gradients cast on the way in) and accumulate in float32; the
// residual stream x, the norms, gates and every gradient they produce stay float32.
import type { Tensor } from '../engine/engine.js';
import type { ModelContext } from './context.js';
import type { LayerParams } from './params.js';

interface QSide {
  xn: Tensor;
  rstdX: Tensor;
  qPre: Tensor;
  rstdQ: Tensor;
  q: Tensor;
}

interface KvSide {
  kPre: Tensor;
  rstdK: Tensor;
  k: Tensor;
  v: Tensor;
}

/** What the backward needs. With recomputation only x, O and LSE (and V when values are kept, the
 * attention's Q where the context keeps it); otherwise every projection too. */
export interface LayerSaved {
  x: Tensor;
  o: Tensor;
  lse: Tensor;
  /** The forward's attention input Q, where re-projecting would hand the backward another tensor. */
  query?: Tensor;
  q?: QSide;
  kv?: KvSide;
  v?: Tensor;
  a?: Tensor;
}

const track = async <T extends Tensor>(c: ModelContext, p: Promise<T>) => c.ledger.track(await p);

/** t in the GEMMs' input dtype: a cast, or t itself when it already is (float32 training). */
async function gemmInput(c: ModelContext, t: Tensor): Promise<Tensor> {
  return t.dtype === c.call.dims.dtype ? t : track(c, c.profile.time('other', c.nn.cast(t, c.call.dims.dtype)));
}

async function projectQ(c: ModelContext, p: LayerParams, x: Tensor): Promise<QSide> {
  const { heads: H, headDim: D, textHidden } = c.shape;
  const T = c.call.dims.batch * c.lq;
  const n = await c.profile.time('other', c.nn.rmsnorm(x, p.normIn, { outDtype: c.call.dims.dtype }));
  const xn = c.ledger.track(n.y), rstdX = c.ledger.track(n.rstd);
  const qPre = await track(c, c.profile.time('projection', c.nn.gemm(xn, p.wq, { m: T, n: H * D, k: textHidden, transB: true })));
  const qn = await c.profile.time('other', c.nn.rmsnorm(qPre, p.qNorm, { outDtype: c.call.dims.dtype, outShape: [c.call.dims.batch, c.lq, H, D] }));
  return { xn, rstdX, qPre, rstdQ: c.ledger.track(qn.rstd), q: c.ledger.track(qn.y) };
}

function kvGemm(c: ModelContext) {
  const { kvHeads: Hkv, headDim: D, visualHidden } = c.shape;
  const B = c.call.dims.batch;
  return { shape: [B, c.lkv, Hkv, D], opts: { m: B * c.lkv, n: Hkv * D, k: visualHidden, transB: true } };
}

async function projectK(c: ModelContext, p: LayerParams, y: Tensor): Promise<Omit<KvSide, 'v'>> {
  const g = kvGemm(c);
  const kPre = await track(c, c.profile.time('projection', c.nn.gemm(y, p.wk, g.opts)));
  const kn = await c.profile.time('other', c.nn.rmsnorm(kPre, p.kNorm, { outDtype: c.call.dims.dtype, outShape: g.shape }));
  return { kPre, rstdK: c.ledger.track(kn.rstd), k: c.ledger.track(kn.y) };
}

function projectV(c: ModelContext, p: LayerParams, y: Tensor): Promise<Tensor> {
  const g = kvGemm(c);
  return track(c, c.profile.time('projection', c.nn.gemm(y, p.wv, { ...g.opts, outDtype: c.call.dims.dtype, outShape: g.shape })));
}

async function projectKV(c: ModelContext, p: LayerParams, y: Tensor): Promise<KvSide> {
  const k = await projectK(c, p, y);
  return { ...k, v: await projectV(c, p, y) };
}

function projectOut(c: ModelContext, p: LayerParams, o: Tensor): Promise<Tensor> {
  const { heads: H, headDim: D, textHidden } = c.shape;
  const T = c.call.dims.batch * c.lq;
  return track(c, c.profile.time('projection', c.nn.gemm(o, p.wo, { m: T, n: textHidden, k: H * D, transB: true })));
}

/** Frees the Q side's tensors but `except`. */
function freeQ(c: ModelContext, s: QSide, except?: Tensor): void {
  c.ledger.free(...[s.xn, s.rstdX, s.qPre, s.rstdQ, s.q].filter((t) => t !== except));
}

function freeKv(c: ModelContext, s: KvSide): void {
  c.ledger.free(s.kPre, s.rstdK, s.k, s.v);
}

/** Forward of one layer; the caller keeps ownership of x (it goes into `saved`). */
export async function layerForward(c: ModelContext, p: LayerParams, x: Tensor, y: Tensor): Promise<{ out: Tensor; saved: LayerSaved }> {
  const q = await projectQ(c, p, x);
  const kv = await projectKV(c, p, y);
  const t0 = performance.now();
  const f = await c.engine.attentionForward(c.call, { q: q.q, k: kv.k, v: kv.v, keepQuery: c.keepQuery });
  await c.profile.settle();
  c.profile.addComm('attention_forward', 'attention', (performance.now() - t0) / 1000, f.bytesSent, f.commWaitSeconds);
  c.partials.forward = f.partials;
  c.gathered.forward = f.gatheredBlocks;
  const o = c.ledger.track(f.o), lse = c.ledger.track(f.lse);
  const a = await projectOut(c, p, o);
  const out = await track(c, c.profile.time('other', c.nn.gatedResidual(x, a, p.gate)));
  if (c.keep === 'all') return { out, saved: { x, o, lse, q, kv, a } };
  const query = c.keepQuery ? q.q : undefined;
  freeQ(c, q, query);
  c.ledger.free(a, kv.kPre, kv.rstdK, kv.k);
  const kept = { x, o, lse, ...(query ? { query } : {}) };
  if (c.keep === 'values') return { out, saved: { ...kept, v: kv.v } };
  c.ledger.free(kv.v);
  return { out, saved: kept };
}

/**
 * Backward of one layer. dOut (the gradient of the layer's output) becomes the returned dx in place.
 * Every weight gradient of the layer is written into `g` (whatever it held), the visual gradient added
 * into dy (where given). Frees everything in `saved` but x.
 */
export async function layerBackward(
  c: ModelContext,
  p: LayerParams,
  g: LayerParams,
  saved: LayerSaved,
  y: Tensor,
  dOut: Tensor,
  dy: Tensor | undefined,
): Promise<Tensor> {
  const { heads: H, kvHeads: Hkv, headDim: D, textHidden, visualHidden } = c.shape;
  const B = c.call.dims.batch, T = B * c.lq, Tkv = B * c.lkv;
  const proj = <R>(r: Promise<R>) => c.profile.time('projection', r);
  const other = <R>(r: Promise<R>) => c.profile.time('other', r);
  // Recomputation: re-project Q (small) and K/V (large) from the kept x and the one shared y.
  const q = saved.q ?? (await projectQ(c, p, saved.x));
  if (saved.query) {
    // The same values as the forward's Q (the kernels are deterministic), but the engine knows that tensor.
    c.ledger.free(q.q);
    q.q = saved.query;
  }
  const kv = saved.kv ?? (saved.v ? { ...(await projectK(c, p, y)), v: saved.v } : await projectKV(c, p, y));
  const a = saved.a ?? (await projectOut(c, p, saved.o));

  // The projections' gradients are written by their GEMMs; the norms' and the gate's ops add to theirs, so
  // those few floats start at zero here. The caller then zeroes no gradient (hundreds of MB a step).
  await other(c.nn.fill([g.gate, g.qNorm, g.kNorm, g.normIn], 0));
  const da32 = await track(c, other(c.nn.gatedResidualBackward(dOut, a, p.gate, g.gate)));
  c.ledger.free(a);
  const da = await gemmInput(c, da32);
  await proj(c.nn.gemmInto(g.wo, da, saved.o, { m: textHidden, n: H * D, k: T, transA: true }));
  const dO = await track(c, proj(c.nn.gemm(da, p.wo, { m: T, n: H * D, k: textHidden, outDtype: c.call.dims.dtype, outShape: [B, c.lq, H, D] })));
  c.ledger.free(da32, da);

  const t0 = performance.now();
  const b = await c.engine.attentionBackward(c.call, { q: q.q, k: kv.k, v: kv.v, o: saved.o, lse: saved.lse, dout: dO });
  await c.profile.settle();
  c.profile.addComm('attention_backward', 'attention', (performance.now() - t0) / 1000, b.bytesSent, b.commWaitSeconds);
  c.partials.backward = b.partials;
  c.gathered.backward = b.gatheredBlocks;
  const dq = c.ledger.track(b.dq), dk = c.ledger.track(b.dk), dv = c.ledger.track(b.dv);
  c.ledger.free(dO, saved.o, saved.lse, q.q, kv.k, kv.v);

  // Text side: q-norm, Wq, input norm; the input norm's dx is added into dOut (the residual path).
  // The norms' input gradients only feed GEMMs: written in the GEMMs' input dtype, no float32 copy.
  const gemmDtype = { outDtype: c.call.dims.dtype };
  const dqPre = await track(c, other(c.nn.rmsnormBackward(q.qPre, p.qNorm, q.rstdQ, dq, g.qNorm, gemmDtype)));
  c.ledger.free(dq, q.qPre, q.rstdQ);
  await proj(c.nn.gemmInto(g.wq, dqPre, q.xn, { m: H * D, n: textHidden, k: T, transA: true }));
  const dxn = await track(c, proj(c.nn.gemm(dqPre, p.wq, { m: T, n: textHidden, k: H * D })));
  c.ledger.free(dqPre, q.xn);
  await other(c.nn.rmsnormBackwardInto(dOut, saved.x, p.normIn, q.rstdX, dxn, g.normIn));
  c.ledger.free(dxn, q.rstdX);

  // Visual side: k-norm, Wk, Wv; dy (where asked for) accumulates over every layer (y is shared).
  const dkPre = await track(c, other(c.nn.rmsnormBackward(kv.kPre, p.kNorm, kv.rstdK, dk, g.kNorm, gemmDtype)));
  c.ledger.free(dk, kv.kPre, kv.rstdK);
  const dvIn = await gemmInput(c, dv);
  c.ledger.free(dvIn === dv ? undefined : dv);
  const wGrad = { m: Hkv * D, n: visualHidden, k: Tkv, transA: true };
  await proj(c.nn.gemmInto(g.wk, dkPre, y, wGrad));
  await proj(c.nn.gemmInto(g.wv, dvIn, y, wGrad));
  if (dy) {
    const yGrad = { m: Tkv, n: visualHidden, k: Hkv * D, accumulate: true };
    await proj(c.nn.gemmInto(dy, dkPre, p.wk, yGrad));
    await proj(c.nn.gemmInto(dy, dvIn, p.wv, yGrad));
  }
  c.ledger.free(dkPre, dvIn);
  return dOut;
}

/** Frees what a forward saved (not x), for forward-only use such as the teacher. */
export function freeSaved(c: ModelContext, s: LayerSaved): void {
  c.ledger.free(s.o, s.lse, s.a, s.v, s.query);
  if (s.q) freeQ(c, s.q);
  if (s.kv) freeKv(c, s.kv);
}
