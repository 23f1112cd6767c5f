// Training data from a directory of safetensors files, one global batch per file: x [B, Lq, textHidden],
// y [B, Lkv, visualHidden], target [B, Lq, textHidden] (F32, BF16, F16 or F64). Step s reads file
// (s - 1) mod count in name order; each rank reads only its rows of every sample.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { XattnError } from '../errors.js';
import { SafetensorsFile } from './safetensors.js';
import { localShards, type DataLayout, type DataSource, type SourceBatch } from './source.js';

export function listDataFiles(dir: string): string[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new XattnError('XATTN_E_DATA', `workload.data.path ${dir} is not a directory`);
    names = readdirSync(dir);
  } catch (e) {
    if (e instanceof XattnError) throw e;
    throw new XattnError('XATTN_E_DATA', `workload.data.path ${dir} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const files = names.filter((n) => n.endsWith('.safetensors')).sort();
  if (!files.length) throw new XattnError('XATTN_E_DATA', `workload.data.path ${dir} holds no .safetensors files`);
  return files.map((n) => path.join(dir, n));
}

function expectShape(f: SafetensorsFile, name: string, want: number[], what: string): void {
  const got = f.tensor(name).shape;
  if (got.length !== want.length || got.some((d, i) => d !== want[i]))
    throw new XattnError('XATTN_E_DATA', `${f.path}: tensor '${name}' is [${got.join(', ')}], expected [${want.join(', ')}] (${what})`);
}

/** This rank's rows of every sample of a [B, L, width] tensor. */
function readShard(f: SafetensorsFile, name: string, batch: number, total: number, shard: { begin: number; length: number }, width: number): Float32Array {
  const out = new Float32Array(batch * shard.length * width);
  for (let b = 0; b < batch; b++) out.set(f.readRows(name, b * total + shard.begin, shard.length), b * shard.length * width);
  return out;
}

export function safetensorsSource(dir: string, l: DataLayout): DataSource {
  const files = listDataFiles(dir);
  const { text, visual } = localShards(l);
  const why = 'batch, tokens and hidden sizes come from the job';
  return {
    description: `safetensors (${files.length} file${files.length > 1 ? 's' : ''} in ${dir})`,
    batch(step: number): SourceBatch {
      const f = SafetensorsFile.open(files[(step - 1) % files.length]!);
      try {
        expectShape(f, 'x', [l.batch, l.textTokens, l.textHidden], why);
        expectShape(f, 'y', [l.batch, l.visualTokens, l.visualHidden], why);
        expectShape(f, 'target', [l.batch, l.textTokens, l.textHidden], why);
        return {
          x: readShard(f, 'x', l.batch, l.textTokens, text, l.textHidden),
          y: readShard(f, 'y', l.batch, l.visualTokens, visual, l.visualHidden),
          target: readShard(f, 'target', l.batch, l.textTokens, text, l.textHidden),
        };
      } finally {
        f.close();
      }
    },
    close() {},
  };
}
