// Bundles the CLI and the GPU bench/tests into dist/ for machines that carry no node_modules
// (the native addon stays external: it is built on the machine that runs it).
import { build } from 'esbuild';

const entries = {
  xattn: 'runtime/cli/entry.ts',
  'bench-gpu': 'bench/gpu.ts',
  'test-gpu': 'test/gpu/run.ts',
  'bench-train': 'bench/train.ts',
  'bench-memory': 'bench/memory.ts',
};
const { existsSync } = await import('node:fs');
await build({
  entryPoints: Object.fromEntries(Object.entries(entries).filter(([, f]) => existsSync(f))),
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: false,
  logLevel: 'warning',
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __xattnCreateRequire } from 'node:module'; const require = __xattnCreateRequire(import.meta.url);" },
});
console.log('bundled into dist/');
