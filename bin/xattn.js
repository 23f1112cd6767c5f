#!/usr/bin/env node
// Entry point: runs the TypeScript CLI through tsx. (GPU machines without node_modules run the
// esbuild bundle instead: node dist/xattn.mjs, built by `npm run bundle`.)
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../runtime/cli/main.ts');
await main(process.argv);
