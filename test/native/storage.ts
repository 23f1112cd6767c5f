// Independent TypeScript model of the storage dtypes (bfloat16, float16): rounding to nearest even by
// arithmetic on doubles, bit encodings and decodings. Tests use it to feed kernels exactly the values a
// reference sees, and to check the native casts; it shares no code or algorithm with the C++ side.
import type { StorageArray, StorageDType } from '../../runtime/native/kernels.js';

interface Format {
  mantissaBits: number;
  minExp: number; // exponent of the smallest normal number
  maxExp: number; // exponent of the largest finite number
}
const FORMATS: Record<'bfloat16' | 'float16', Format> = {
  bfloat16: { mantissaBits: 7, minExp: -126, maxExp: 127 },
  float16: { mantissaBits: 10, minExp: -14, maxExp: 15 },
};

function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1; // guard against log2 rounding
  else if (2 ** (e + 1) <= a) e += 1;
  return e;
}

/** Rounds x to the nearest value of the format (ties to even, overflow to infinity). */
export function roundToFormat(x: number, dtype: 'bfloat16' | 'float16'): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const f = FORMATS[dtype];
  const a = Math.abs(x);
  const quantum = 2 ** (Math.max(exponentOf(a), f.minExp) - f.mantissaBits);
  const units = a / quantum; // exact: division by a power of two in range
  let n = Math.floor(units);
  const frac = units - n;
  if (frac > 0.5 || (frac === 0.5 && n % 2 === 1)) n += 1;
  const y = n * quantum;
  const largest = (2 - 2 ** -f.mantissaBits) * 2 ** f.maxExp;
  return Math.sign(x) * (y > largest ? Infinity : y);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of a value already representable in the format (NaN gives a quiet NaN). */
export function encode(x: number, dtype: 'bfloat16' | 'float16'): number {
  if (dtype === 'bfloat16') {
    if (Number.isNaN(x)) return 0x7fc0;
    f32[0] = x;
    return u32[0] >>> 16;
  }
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | (a / 2 ** -24); // subnormal (or zero)
  const e = exponentOf(a);
  return sign | ((e + 15) << 10) | ((a / 2 ** e - 1) * 1024);
}

export function decode(bits: number, dtype: 'bfloat16' | 'float16'): number {
  if (dtype === 'bfloat16') {
    u32[0] = bits << 16;
    return f32[0];
  }
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 31) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** What a kernel is given (stored) and the exact values it represents (for the fp64 reference). */
export interface Stored {
  data: StorageArray;
  values: Float64Array;
}

/** Rounds float32 inputs to the storage dtype. */
export function toStorage(src: Float32Array, dtype: StorageDType): Stored {
  if (dtype === 'float32') return { data: Float32Array.from(src), values: Float64Array.from(src) };
  const values = new Float64Array(src.length);
  const data = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    values[i] = roundToFormat(src[i], dtype);
    data[i] = encode(values[i], dtype);
  }
  return { data, values };
}
