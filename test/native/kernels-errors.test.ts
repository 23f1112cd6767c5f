// Bad input to the kernel surface: each case throws an Error with a stable code and a message naming the
// problem, and the process carries on (a valid call still works afterwards).
import { describe, expect, it } from 'vitest';

import { kernels, type AttnDims } from '../../runtime/native/kernels.js';

const k = kernels();
const dims: AttnDims = { batch: 1, heads: 4, kvHeads: 2, headDim: 8, dtype: 'float32' };
const opts = { lq: 4, lkv: 5 };
const q = new Float32Array(128);
const kv = new Float32Array(80);
const rows = new Float32Array(16);

function expectError(fn: () => unknown, code: string, message: string | RegExp) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(Error);
  expect((caught as { code?: string }).code).toBe(`XATTN_E_${code}`);
  expect((caught as Error).message).toMatch(message);
}

describe('kernel argument validation', () => {
  it('names the tensor, expected and actual length when a shape is wrong', () => {
    expectError(() => k.attnForward(dims, new Float32Array(100), kv, kv, opts), 'SHAPE_MISMATCH',
      'q has 100 elements, expected 128 = batch 1 × lq 4 × heads 4 × headDim 8');
    expectError(() => k.attnForward(dims, q, kv, new Float32Array(81), opts), 'SHAPE_MISMATCH',
      'v has 81 elements, expected 80 = batch 1 × lkv 5 × kvHeads 2 × headDim 8');
    expectError(() => k.attnBackward(dims, q, kv, kv, q, rows, new Float32Array(15), opts), 'SHAPE_MISMATCH',
      'drow has 15 elements, expected 16 = batch 1 × heads 4 × lq 4');
    expectError(() => k.lseMerge(dims, 4, q, rows, q, new Float32Array(3)), 'SHAPE_MISMATCH', /^partLse has 3 elements/);
    expectError(() => k.rowDot(dims, 3, q, q), 'SHAPE_MISMATCH', /^dout has 128 elements, expected 96/);
  });

  it('rejects heads that are not a multiple of kvHeads, and other bad dims', () => {
    expectError(() => k.attnForward({ ...dims, kvHeads: 3 }, q, kv, kv, opts), 'INVALID_ARGUMENT',
      'heads (4) must be divisible by kvHeads (3)');
    expectError(() => k.attnForward({ ...dims, headDim: 0 }, q, kv, kv, opts), 'INVALID_ARGUMENT', /headDim must be in 1\.\.256/);
    expectError(() => k.attnForward({ ...dims, batch: 1.5 }, q, kv, kv, opts), 'INVALID_ARGUMENT', /batch must be an integer/);
    expectError(() => k.attnForward({ ...dims, scale: -1 }, q, kv, kv, opts), 'INVALID_ARGUMENT', /scale must be a finite number/);
    expectError(() => k.attnForward(null as never, q, kv, kv, opts), 'INVALID_ARGUMENT', /dims must be an object/);
    expectError(() => k.attnForward({ ...dims, heads: undefined } as never, q, kv, kv, opts), 'INVALID_ARGUMENT',
      /heads must be a number/);
  });

  it('rejects an array type that does not match the dtype', () => {
    expectError(() => k.attnForward({ ...dims, dtype: 'bfloat16' }, q, kv, kv, opts), 'INVALID_ARGUMENT',
      'q must be a Uint16Array for dtype bfloat16, got Float32Array');
    expectError(() => k.attnForward(dims, new Uint16Array(128), kv, kv, opts), 'INVALID_ARGUMENT',
      'q must be a Float32Array for dtype float32, got Uint16Array');
    expectError(() => k.attnForward(dims, q, Array.from(kv) as never, kv, opts), 'INVALID_ARGUMENT', /k must be .* got Array/);
    expectError(() => k.attnBackward({ ...dims, dtype: 'float16' }, new Uint16Array(128), new Uint16Array(80),
      new Uint16Array(80), new Uint16Array(128), new Uint16Array(16) as never, rows, opts), 'INVALID_ARGUMENT',
      'lse must be a Float32Array (float32 always), got Uint16Array');
    expectError(() => k.castToF32('float16', new Float32Array(2)), 'INVALID_ARGUMENT', /src must be a Uint16Array/);
    expectError(() => k.castFromF32('bfloat16', new Uint16Array(2) as never), 'INVALID_ARGUMENT', /src must be a Float32Array/);
  });

  it('rejects an unknown dtype', () => {
    expectError(() => k.attnForward({ ...dims, dtype: 'int8' as never }, q, kv, kv, opts), 'INVALID_ARGUMENT',
      "unknown dtype 'int8' (expected float32, bfloat16 or float16)");
    expectError(() => k.castFromF32('fp8' as never, q), 'INVALID_ARGUMENT', /unknown dtype 'fp8'/);
  });

  it('rejects bad block options and masks', () => {
    expectError(() => k.attnForward(dims, q, kv, kv, undefined as never), 'INVALID_ARGUMENT', /opts must be an object/);
    expectError(() => k.attnForward(dims, q, kv, kv, { lq: -4, lkv: 5 }), 'INVALID_ARGUMENT', /lq must be an integer in 0\.\./);
    expectError(() => k.attnForward(dims, q, kv, kv, { ...opts, kvOffset: 0.5 }), 'INVALID_ARGUMENT', /kvOffset must be an integer/);
    expectError(() => k.attnForward(dims, q, kv, kv, { ...opts, mask: new Int32Array(6) }), 'SHAPE_MISMATCH',
      'mask has 6 elements, expected 8 = batch 1 × lq 4 × 2');
    expectError(() => k.attnForward(dims, q, kv, kv, { ...opts, mask: new Uint32Array(8) as never }), 'INVALID_ARGUMENT',
      'mask must be an Int32Array of [begin, end) pairs, got Uint32Array');
    expectError(() => k.attnForward(dims, q, kv, kv, { ...opts, mask: new Int32Array([0, 5, 5, 2, 0, 1, 0, 1]) }),
      'INVALID_ARGUMENT', 'mask row (batch 0, query 1) is [5, 2): need 0 <= begin <= end');
    expectError(() => k.attnForward(dims, q, kv, kv, { ...opts, mask: new Int32Array([0, 5, 0, 5, -1, 1, 0, 1]) }),
      'INVALID_ARGUMENT', /mask row \(batch 0, query 2\) is \[-1, 1\)/);
  });

  it('keeps the process usable after errors', () => {
    const out = k.attnForward(dims, q, kv, kv, opts);
    expect(out.o.length).toBe(128);
    expect(out.lse.every((x) => Math.abs(x - Math.log(5)) < 1e-6)).toBe(true); // all scores 0: log(lkv)
  });
});
