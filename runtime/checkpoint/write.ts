// Atomic checkpoint writes: the safetensors data goes to a temp file (streamed, hashed, fsynced), is
// renamed into place, then the manifest naming it follows the same way, then the directory is fsynced.
// Nothing that exists is modified before the new checkpoint is complete, so a failure (a full disk, a
// read-only volume) leaves every previous checkpoint intact; the temp files are removed.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { XattnError } from '../errors.js';
import { bytesOf, encodeHeader, type StEntry } from '../data/safetensors-write.js';
import { nodeIO, type CheckpointIO } from './fsio.js';
import { ThreadHash } from './thread-hash.js';
import { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, dataName, manifestName, TEMP_PREFIX, type CheckpointManifest } from './manifest.js';

export interface LazyTensor {
  name: string;
  shape: number[];
  /** Fetched one at a time while writing, so host memory holds one tensor, not the whole state. */
  read(): Promise<Float32Array>;
}

export interface CheckpointContent extends Omit<CheckpointManifest, 'format' | 'version' | 'createdAt' | 'file' | 'tensors'> {
  tensors: LazyTensor[];
}

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exhausted',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a component of the path is not a directory',
  EEXIST: 'the path exists and is not a directory',
  EIO: 'an I/O error occurred',
};

export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code && REASONS[code] ? `${REASONS[code]} (${code})` : String((e as Error)?.message ?? e);
}

async function writeFileAtomically(
  io: CheckpointIO,
  dir: string,
  name: string,
  fill: (write: (b: Uint8Array) => Promise<void>) => Promise<void>,
  cleanup: string[],
): Promise<void> {
  const tmp = path.join(dir, TEMP_PREFIX + name);
  cleanup.push(tmp);
  const f = await io.create(tmp);
  try {
    await fill((b) => f.write(b));
    await f.sync();
  } finally {
    await f.close();
  }
  await io.rename(tmp, path.join(dir, name));
}

/** Writes one checkpoint; returns the manifest path and the data file's size. */
export async function writeCheckpoint(dir: string, content: CheckpointContent, io: CheckpointIO = nodeIO): Promise<{ manifest: string; bytes: number }> {
  const data = dataName(content.step, randomBytes(4).toString('hex'));
  const mname = manifestName(content.step);
  const cleanup: string[] = [];
  let committed = false; // the manifest is in place: the checkpoint is complete, keep it whatever follows
  try {
    try {
      await io.mkdirp(dir);
    } catch (e) {
      throw new XattnError('XATTN_E_CHECKPOINT', `cannot create the checkpoint directory ${dir}: ${describeFsError(e)}`);
    }
    const entries: StEntry[] = content.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape }));
    const hash = new ThreadHash();
    let bytes = 0, sha256: string;
    try {
      await writeFileAtomically(io, dir, data, async (write) => {
        const put = async (b: Uint8Array) => {
          hash.update(b);
          bytes += b.length;
          await write(b);
        };
        await put(encodeHeader(entries, { format: CHECKPOINT_FORMAT, step: String(content.step) }));
        for (const t of content.tensors) await put(bytesOf(await t.read()));
      }, cleanup);
      sha256 = await hash.digest();
    } finally {
      await hash.close();
    }
    cleanup.push(path.join(dir, data)); // an orphan if the manifest never lands
    const { tensors, ...rest } = content;
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      createdAt: new Date().toISOString(),
      ...rest,
      file: { name: data, bytes, sha256 },
      tensors: tensors.map((t) => t.name),
    };
    await writeFileAtomically(io, dir, mname, (write) => write(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)), cleanup);
    committed = true;
    await io.syncDir(dir);
    return { manifest: path.join(dir, mname), bytes };
  } catch (e) {
    // Remove only what this attempt created: temp files, and the data file if its manifest never landed.
    if (!committed) for (const p of cleanup) await io.unlink(p).catch(() => {});
    if (e instanceof XattnError) throw e;
    throw new XattnError(
      'XATTN_E_CHECKPOINT',
      `could not write the checkpoint of step ${content.step} to ${dir}: ${describeFsError(e)}; earlier checkpoints are untouched`,
    );
  }
}
