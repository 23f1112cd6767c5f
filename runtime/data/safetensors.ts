// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the raw
// little-endian tensor bytes, offsets relative to the end of the header. Readers check every rule of the
// format and name the file and tensor in errors; reads are by byte range, so a rank reads only its shard.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { XattnError } from '../errors.js';

export const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;
export type StDType = keyof typeof DTYPE_BYTES;

export interface StTensor {
  dtype: StDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface StHeader {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
  /** Bytes of the whole file the header describes. */
  fileBytes: number;
}

const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';
const fail = (file: string, why: string): never => {
  throw new XattnError('XATTN_E_DATA', `${file}: not a valid safetensors file: ${why}`);
};

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Parses and checks a header given the file's first bytes and its total size. */
export function parseHeader(file: string, head: Buffer, fileBytes: number): { header: StHeader; headerBytes: number } {
  if (fileBytes < 8 || head.length < 8) fail(file, `${fileBytes} bytes is too short for the 8-byte header length`);
  const n = Number(head.readBigUInt64LE(0));
  if (n > MAX_HEADER || 8 + n > fileBytes) fail(file, `header length ${n} does not fit the file of ${fileBytes} bytes`);
  if (head.length < 8 + n) fail(file, 'the header is truncated');
  let json: unknown;
  try {
    json = JSON.parse(head.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    fail(file, `the header is not JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail(file, 'the header is not a JSON object');
  const dataStart = 8 + n, dataBytes = fileBytes - dataStart;
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, any>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Object.values(v).some((x) => typeof x !== 'string')) fail(file, '__metadata__ must map strings to strings');
      metadata = v;
      continue;
    }
    const where = `tensor '${name}'`;
    if (!v || typeof v !== 'object') fail(file, `${where} is not an object`);
    if (!(v.dtype in DTYPE_BYTES)) fail(file, `${where} has unknown dtype ${JSON.stringify(v.dtype)}`);
    if (!Array.isArray(v.shape) || v.shape.some((d: unknown) => !Number.isSafeInteger(d) || (d as number) < 0)) fail(file, `${where} has a bad shape`);
    const off = v.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o: unknown) => Number.isSafeInteger(o) && (o as number) >= 0) || off[0] > off[1])
      fail(file, `${where} has bad data_offsets`);
    if (off[1] > dataBytes) fail(file, `${where} ends at byte ${off[1]} but the data holds ${dataBytes} bytes (truncated file?)`);
    if (off[1] - off[0] !== numel(v.shape) * DTYPE_BYTES[v.dtype as StDType])
      fail(file, `${where}: ${off[1] - off[0]} bytes do not hold ${v.dtype}[${v.shape.join(', ')}]`);
    tensors.set(name, { dtype: v.dtype, shape: v.shape, begin: dataStart + off[0], end: dataStart + off[1] });
  }
  // The tensors must tile the data exactly: no gaps, no overlaps, nothing after the last one.
  let at = dataStart;
  for (const t of [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (t.begin !== at) fail(file, `tensor data overlaps or leaves a gap at byte ${at}`);
    at = t.end;
  }
  if (at !== fileBytes) fail(file, `${fileBytes - at} bytes after the last tensor`);
  return { header: { tensors, metadata, fileBytes }, headerBytes: dataStart };
}

function decode(dtype: StDType, bytes: Buffer, file: string, name: string): Float32Array {
  const n = bytes.length / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
    else for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(4 * i);
  } else if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = bytes.readUInt16LE(2 * i) << 16;
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(bytes.readUInt16LE(2 * i));
  } else if (dtype === 'F64') {
    for (let i = 0; i < n; i++) out[i] = bytes.readDoubleLE(8 * i);
  } else {
    throw new XattnError('XATTN_E_DATA', `${file}: tensor '${name}' is ${dtype}; expected a floating-point dtype (F32, BF16, F16, F64)`);
  }
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** An open safetensors file: the checked header, and reads of whole tensors or row ranges. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number,
    readonly header: StHeader,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new XattnError('XATTN_E_DATA', `${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      const first = Buffer.alloc(Math.min(size, 8));
      readSync(fd, first, 0, first.length, 0);
      const n = first.length === 8 ? Number(first.readBigUInt64LE(0)) : 0;
      const head = Buffer.alloc(Math.min(size, 8 + Math.min(n, MAX_HEADER)));
      readSync(fd, head, 0, head.length, 0);
      return new SafetensorsFile(path, fd, parseHeader(path, head, size).header);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  tensor(name: string): StTensor {
    const t = this.header.tensors.get(name);
    if (!t) throw new XattnError('XATTN_E_DATA', `${this.path}: no tensor '${name}' (has: ${[...this.header.tensors.keys()].join(', ') || 'none'})`);
    return t;
  }

  /** Raw bytes [offset, offset + length) of a tensor's data. */
  readBytes(name: string, offset = 0, length?: number): Buffer {
    const t = this.tensor(name);
    const len = length ?? t.end - t.begin - offset;
    if (offset < 0 || offset + len > t.end - t.begin) throw new XattnError('XATTN_E_DATA', `${this.path}: read past the end of '${name}'`);
    const buf = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const r = readSync(this.fd, buf, done, len - done, t.begin + offset + done);
      if (r === 0) throw new XattnError('XATTN_E_DATA', `${this.path}: unexpected end of file reading '${name}'`);
      done += r;
    }
    return buf;
  }

  /** The whole tensor as float32. */
  readFloat32(name: string): Float32Array {
    return decode(this.tensor(name).dtype, this.readBytes(name), this.path, name);
  }

  /** Rows [begin, begin + count) of the flattened leading dimensions (row = last dimension). */
  readRows(name: string, begin: number, count: number): Float32Array {
    const t = this.tensor(name);
    const width = t.shape.length ? t.shape[t.shape.length - 1]! : 1;
    const rowBytes = width * DTYPE_BYTES[t.dtype];
    return decode(t.dtype, this.readBytes(name, begin * rowBytes, count * rowBytes), this.path, name);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
