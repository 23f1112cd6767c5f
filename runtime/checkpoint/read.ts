// Finding the newest valid checkpoint: manifests newest first; one whose manifest does not parse, whose
// data file is missing, has the wrong size or hash, or whose tensors do not match, is skipped with a
// warning (a crash mid-write, a truncated copy, bit rot).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { SafetensorsFile } from '../data/safetensors.js';
import { MANIFEST_RE, manifestSchema, type CheckpointManifest } from './manifest.js';

export interface FoundCheckpoint {
  manifest: CheckpointManifest;
  manifestPath: string;
  dataPath: string;
}

/** Manifest files of dir, newest step first (none if dir does not exist). */
export async function listManifests(dir: string): Promise<{ step: number; file: string }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .map((n) => ({ m: MANIFEST_RE.exec(n), n }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), file: path.join(dir, x.n) }))
    .sort((a, b) => b.step - a.step);
}

export async function readManifest(file: string): Promise<CheckpointManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`the manifest is unreadable (${(e as Error).message})`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) throw new Error(`the manifest is invalid: ${z.prettifyError(r.error).replaceAll('\n', ' ')}`);
  return r.data;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Checks a checkpoint end to end; throws an Error saying what is wrong. `full` also hashes the data. */
export async function verifyCheckpoint(manifestPath: string, full = true): Promise<FoundCheckpoint> {
  const manifest = await readManifest(manifestPath);
  const dataPath = path.join(path.dirname(manifestPath), manifest.file.name);
  let size: number;
  try {
    size = (await stat(dataPath)).size;
  } catch {
    throw new Error(`its data file ${manifest.file.name} is missing`);
  }
  if (size !== manifest.file.bytes) throw new Error(`its data file has ${size} bytes, the manifest says ${manifest.file.bytes} (partial write?)`);
  if (!full) return { manifest, manifestPath, dataPath };
  if ((await sha256(dataPath)) !== manifest.file.sha256) throw new Error('its data file does not match the SHA-256 in the manifest (corrupt)');
  const f = SafetensorsFile.open(dataPath);
  try {
    const names = [...f.header.tensors.keys()].sort();
    const want = [...manifest.tensors].sort();
    if (names.length !== want.length || names.some((n, i) => n !== want[i])) throw new Error('its tensors differ from the manifest');
  } finally {
    f.close();
  }
  return { manifest, manifestPath, dataPath };
}

/** The newest checkpoint that verifies, warning about each newer one that does not. */
export async function findLatestCheckpoint(dir: string, warn: (msg: string) => void): Promise<FoundCheckpoint | undefined> {
  for (const { step, file } of await listManifests(dir)) {
    try {
      return await verifyCheckpoint(file);
    } catch (e) {
      warn(`skipping checkpoint of step ${step} (${file}): ${(e as Error).message}`);
    }
  }
  return undefined;
}
