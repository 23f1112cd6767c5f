// The native blocked GEMM against a float64 reference: every transpose combination, shapes spanning
// several cache blocks and the split-K path, accumulation, mixed storage dtypes; bitwise identical
// results for any thread count; clear errors on bad arguments.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, type DTypeName } from '../../../runtime/engine/engine.js';
import { bindNn } from '../../../runtime/model/nn.js';
import { randn } from '../../../runtime/worker/random.js';
import { halfToFloat } from '../../../runtime/data/safetensors.js';

const engine = Engine.create();
const nn = bindNn(engine);
afterAll(() => engine.close());

const bf16 = (x: number) => {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  return (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16; // round to nearest even
};
const bf16Value = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!;

/** Uploads values in a dtype; returns the tensor and the exact values it holds. */
async function stored(v: Float32Array, dtype: DTypeName) {
  if (dtype === 'float32') return { t: await engine.upload(v, [v.length], dtype), exact: Float64Array.from(v) };
  const t = await engine.upload(v, [v.length], dtype);
  const bits = (await t.download()) as Uint16Array;
  return { t, exact: Float64Array.from(bits, (b) => (dtype === 'bfloat16' ? bf16Value(b) : halfToFloat(b))) };
}

function reference(a: Float64Array, b: Float64Array, m: number, n: number, k: number, ta: boolean, tb: boolean) {
  const c = new Float64Array(m * n), abs = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0, sa = 0;
      for (let p = 0; p < k; p++) {
        const t = (ta ? a[p * m + i]! : a[i * k + p]!) * (tb ? b[j * k + p]! : b[p * n + j]!);
        s += t;
        sa += Math.abs(t);
      }
      c[i * n + j] = s;
      abs[i * n + j] = sa;
    }
  return { c, abs };
}

// Float32 accumulation error relative to sum|a·b| (measured <= 2.6e-7 on these shapes); a wrong or
// missing block of K, a wrong tile edge or a transpose mix-up is orders of magnitude larger.
const REL = 2e-6;

describe('gemm', () => {
  const shapes = [
    [1, 1, 1],
    [7, 19, 5],
    [100, 270, 300], // two blocks along each of M, N and K, with partial edges
    [40, 50, 9000], // few tiles, long K: the split-K path
  ] as const;
  for (const [m, n, k] of shapes)
    it(`matches float64 for ${m}x${n}x${k}, every transpose, with accumulate`, async () => {
      const a = await stored(randn(m * k, m + 1), 'float32'), b = await stored(randn(k * n, n + 2), 'float32');
      for (const transA of [false, true])
        for (const transB of [false, true]) {
          const { c: want, abs } = reference(a.exact, b.exact, m, n, k, transA, transB);
          const c = await nn.gemm(a.t, b.t, { m, n, k, transA, transB });
          const got = (await c.download()) as Float32Array;
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(REL * abs[i]! + 1e-30);
          await nn.gemmInto(c, a.t, b.t, { m, n, k, transA, transB, alpha: -0.5, accumulate: true }); // c = 0.5·AB
          const half = (await c.download()) as Float32Array;
          for (let i = 0; i < want.length; i++) expect(Math.abs(half[i]! - 0.5 * want[i]!)).toBeLessThanOrEqual(REL * abs[i]! + 1e-30);
        }
    });

  it('takes bfloat16 and float16 operands and writes any dtype', async () => {
    const m = 33, n = 70, k = 130;
    const a = await stored(randn(m * k, 5), 'bfloat16'), b = await stored(randn(k * n, 6), 'float16');
    const { c: want, abs } = reference(a.exact, b.exact, m, n, k, false, true);
    const c32 = (await (await nn.gemm(a.t, b.t, { m, n, k, transB: true })).download()) as Float32Array;
    for (let i = 0; i < want.length; i++) expect(Math.abs(c32[i]! - want[i]!)).toBeLessThanOrEqual(REL * abs[i]!);
    const cb = await nn.gemm(a.t, b.t, { m, n, k, transB: true, outDtype: 'bfloat16', outShape: [m, 2, n / 2] });
    expect(cb.shape).toEqual([m, 2, n / 2]);
    const bits = (await cb.download()) as Uint16Array;
    for (let i = 0; i < want.length; i++) expect(bits[i]).toBe(bf16(c32[i]!));
  });

  it('gives bitwise identical results for any thread count', () => {
    const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gemm-fixture.ts');
    const hash = (threads: number) =>
      execFileSync(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, XATTN_CPU_THREADS: String(threads) }, encoding: 'utf8' });
    const one = hash(1);
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(hash(2)).toBe(one);
    expect(hash(3)).toBe(one);
  });

  it('names bad arguments', async () => {
    const a = await engine.upload(new Float32Array(6), [2, 3], 'float32');
    await expect(nn.gemm(a, a, { m: 2, n: 2, k: 2 })).rejects.toMatchObject({ code: 'XATTN_E_SHAPE_MISMATCH', message: expect.stringMatching(/gemm: a is float32\[2, 3\] \(6 elements\), expected 4/) });
    await expect(nn.gemm(a, a, { m: 2, n: 2, k: 3, accumulate: true })).rejects.toMatchObject({ code: 'XATTN_E_INVALID_ARGUMENT', message: expect.stringMatching(/accumulate needs an out tensor/) });
    await expect(nn.gemm(a, a, { m: -1, n: 2, k: 3 })).rejects.toMatchObject({ code: 'XATTN_E_INVALID_ARGUMENT' });
    const sq = await engine.upload(new Float32Array(4), [2, 2], 'float32');
    await expect(nn.gemmInto(sq, sq, sq, { m: 2, n: 2, k: 2 })).rejects.toMatchObject({ code: 'XATTN_E_INVALID_ARGUMENT', message: expect.stringMatching(/out must not be a or b/) });
  });
});
