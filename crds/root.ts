// The project root: the nearest folder above this module holding package.json. Works both from the
// sources and from a bundle in dist/ (used on GPU machines that carry no node_modules).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function projectRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the xattn project root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  cached = dir;
  return dir;
}
