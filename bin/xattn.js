#!/usr/bin/env node
// Entry point: runs the TypeScript CLI through tsx (or the bundled build when present).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundled = fileURLToPath(new URL('../dist/xattn.mjs', import.meta.url));
if (existsSync(bundled) && !process.env.XATTN_FROM_SOURCE) {
  await import(bundled);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../runtime/cli/main.ts');
  await main(process.argv);
}
