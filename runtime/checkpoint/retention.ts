// Keeps the newest K complete checkpoints: every manifest older than the K-th complete one goes, then
// data files that no remaining manifest names, and temp files of interrupted writes. Runs only after a
// new checkpoint is complete (and only rank 0 writes), so nothing here races a writer.
import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { TEMP_PREFIX } from './manifest.js';
import { listManifests, readManifest, verifyCheckpoint } from './read.js';

export async function pruneCheckpoints(dir: string, keep: number, warn: (msg: string) => void): Promise<void> {
  const remaining: string[] = [];
  let complete = 0;
  for (const m of await listManifests(dir)) {
    if (complete >= keep) {
      await unlink(m.file).catch((e) => warn(`could not remove old checkpoint ${m.file}: ${e.message}`));
      continue;
    }
    remaining.push(m.file);
    try {
      // A size check only: hashing every kept checkpoint on every save would cost more than the save.
      await verifyCheckpoint(m.file, false);
      complete++;
    } catch {
      // A broken checkpoint newer than the kept ones does not count toward K; resume skips it, loudly.
    }
  }
  const referenced = new Set<string>();
  for (const f of remaining) {
    try {
      referenced.add((await readManifest(f)).file.name);
    } catch {
      // unparseable: nothing it names can be trusted
    }
  }
  for (const n of await readdir(dir)) {
    const orphan = n.startsWith('step-') && n.endsWith('.safetensors') && !referenced.has(n);
    if (orphan || n.startsWith(TEMP_PREFIX)) await unlink(path.join(dir, n)).catch(() => {});
  }
}
