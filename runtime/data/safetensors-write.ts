// Writing safetensors: the header for a list of tensors (offsets in list order, JSON padded with spaces
// to a multiple of 8 bytes so the data starts aligned), and a whole-file writer for small files.
import { writeFileSync } from 'node:fs';
import { DTYPE_BYTES, type StDType } from './safetensors.js';

export interface StEntry {
  name: string;
  dtype: StDType;
  shape: number[];
}

export function entryBytes(e: StEntry): number {
  return e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
}

/** The 8-byte length plus the JSON header; tensor data follows in the order of `entries`. */
export function encodeHeader(entries: StEntry[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const e of entries) {
    const n = entryBytes(e);
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + n] };
    at += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json]);
}

/** Little-endian bytes of a typed array (a view, no copy, on little-endian hosts). */
export function bytesOf(a: Float32Array | Uint16Array | Int32Array | Float64Array | Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export interface StWriteTensor extends StEntry {
  data: Float32Array | Uint16Array | Int32Array | Float64Array | Uint8Array;
}

/** Writes a whole safetensors file at once (data sets, tests); checkpoints stream instead. */
export function writeSafetensors(path: string, tensors: StWriteTensor[], metadata: Record<string, string> = {}): void {
  writeFileSync(path, Buffer.concat([encodeHeader(tensors, metadata), ...tensors.map((t) => bytesOf(t.data))]));
}
