// The safetensors reader against files built byte by byte from the format's description, the writer
// round trip, every malformation the reader must reject, and the sharded training-data source.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../../runtime/data/safetensors.js';
import { writeSafetensors } from '../../../runtime/data/safetensors-write.js';
import { safetensorsSource } from '../../../runtime/data/safetensors-source.js';
import { tempDirs } from '../train/temp-dirs.js';

const tempDir = tempDirs('xattn-st');

/** A file laid out by hand: u64 LE header size, the JSON text, then the data bytes. */
function handmade(dir: string, header: string, data: number[], name = 'f.safetensors'): string {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.concat([len, h, Buffer.from(data)]));
  return file;
}

const openError = (file: string): string => {
  try {
    SafetensorsFile.open(file).close();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('XATTN_E_DATA');
    return (e as Error).message;
  }
  throw new Error('expected the file to be rejected');
};

describe('safetensors', () => {
  it('reads F32, BF16 and F16 tensors laid out by hand', () => {
    const dir = tempDir();
    const header = JSON.stringify({
      __metadata__: { note: 'hand made' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] },
      c: { dtype: 'F16', shape: [5], data_offsets: [14, 24] },
    });
    // a = [1.5, -2] little-endian f32; b = bf16 [1, -3, 0.333984375]; c = f16 [1, -2, 2^-24, inf, 0.333251953125]
    const data = [0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0, 0x80, 0x3f, 0x40, 0xc0, 0xab, 0x3e, 0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c, 0x55, 0x35];
    const f = SafetensorsFile.open(handmade(dir, header, data));
    expect(f.header.metadata).toEqual({ note: 'hand made' });
    expect(Array.from(f.readFloat32('a'))).toEqual([1.5, -2]);
    expect(Array.from(f.readFloat32('b'))).toEqual([1, -3, 0.333984375]);
    expect(Array.from(f.readFloat32('c'))).toEqual([1, -2, 2 ** -24, Infinity, 0.333251953125]);
    expect(() => f.readFloat32('missing')).toThrow(/no tensor 'missing' \(has: a, b, c\)/);
    f.close();
  });

  it('round-trips what the writer writes, and reads row ranges', () => {
    const dir = tempDir();
    const x = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i - 7.25);
    const bits = Uint16Array.of(0x3f80, 0x4000);
    const file = path.join(dir, 'w.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [2, 3, 4], data: x }, { name: 'h', dtype: 'BF16', shape: [2], data: bits }], { k: 'v' });
    const f = SafetensorsFile.open(file);
    expect(f.readFloat32('x')).toEqual(x);
    expect(Array.from(f.readFloat32('h'))).toEqual([1, 2]);
    expect(f.readRows('x', 2, 3)).toEqual(x.subarray(8, 20));
    expect(f.header.metadata).toEqual({ k: 'v' });
    f.close();
  });

  it('rejects malformed files with the reason', () => {
    const dir = tempDir();
    const ok = (t: object) => JSON.stringify(t);
    const cases: [string, string, number[], RegExp][] = [
      ['truncated data', ok({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), [0, 0, 0, 0], /ends at byte 8 .* 4 bytes/],
      ['not JSON', '{"a": ', [], /not JSON/],
      ['unknown dtype', ok({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }), [0], /unknown dtype/],
      ['size mismatch', ok({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), Array(8).fill(0), /8 bytes do not hold F32\[3\]/],
      ['overlap', ok({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), Array(8).fill(0), /overlaps or leaves a gap/],
      ['gap', ok({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), Array(8).fill(0), /overlaps or leaves a gap at byte/],
      ['trailing bytes', ok({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }), Array(6).fill(0), /2 bytes after the last tensor/],
      ['bad offsets', ok({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }), Array(4).fill(0), /bad data_offsets/],
    ];
    for (const [what, header, data, why] of cases) expect(openError(handmade(dir, header, data, `${what}.safetensors`)), what).toMatch(why);
    const huge = path.join(dir, 'huge.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(1n << 40n);
    writeFileSync(huge, Buffer.concat([len, Buffer.from('{}')]));
    expect(openError(huge)).toMatch(/header length .* does not fit/);
    expect(openError(path.join(dir, 'absent.safetensors'))).toMatch(/cannot open \(ENOENT\)/);
  });

  it('gives each rank its rows of every sample, from file (step - 1) mod count', () => {
    const dir = tempDir();
    const B = 2, Lq = 7, Lkv = 11, dx = 3, dy = 2;
    const fill = (n: number, base: number) => Float32Array.from({ length: n }, (_, i) => base + i);
    for (const k of [0, 1])
      writeSafetensors(path.join(dir, `batch-${k}.safetensors`), [
        { name: 'x', dtype: 'F32', shape: [B, Lq, dx], data: fill(B * Lq * dx, 1000 * k) },
        { name: 'y', dtype: 'F32', shape: [B, Lkv, dy], data: fill(B * Lkv * dy, 1000 * k + 500) },
        { name: 'target', dtype: 'F32', shape: [B, Lq, dx], data: fill(B * Lq * dx, -1000 * k) },
      ]);
    const layout = { batch: B, textTokens: Lq, visualTokens: Lkv, textHidden: dx, visualHidden: dy };
    const P = 3;
    for (const step of [1, 2, 3]) {
      const parts = Array.from({ length: P }, (_, rank) => safetensorsSource(dir, { ...layout, rank, worldSize: P }).batch(step));
      const k = (step - 1) % 2;
      // Reassemble sample by sample: rank shards are contiguous token ranges of each sample.
      const join = (key: 'x' | 'y' | 'target', L: number, w: number) => {
        const out: number[] = [];
        for (let b = 0; b < B; b++)
          for (const [rank, p] of parts.entries()) {
            const len = Math.floor(L / P) + (rank < L % P ? 1 : 0);
            out.push(...(p[key] as Float32Array).subarray(b * len * w, (b + 1) * len * w));
          }
        return out;
      };
      expect(join('x', Lq, dx)).toEqual(Array.from(fill(B * Lq * dx, 1000 * k)));
      expect(join('y', Lkv, dy)).toEqual(Array.from(fill(B * Lkv * dy, 1000 * k + 500)));
      expect(join('target', Lq, dx)).toEqual(Array.from(fill(B * Lq * dx, -1000 * k)));
    }
    const wrong = safetensorsSource(dir, { ...layout, textTokens: 8, rank: 0, worldSize: 1 });
    expect(() => wrong.batch(1)).toThrow(/batch-0.safetensors: tensor 'x' is \[2, 7, 3\], expected \[2, 8, 3\]/);
    expect(() => safetensorsSource(tempDir(), { ...layout, rank: 0, worldSize: 1 })).toThrow(/holds no .safetensors files/);
  });
});
