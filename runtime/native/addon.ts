// Loads the compiled addon (build/native/Release/xattn.node) once.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../crds/root.js';


// The addon's surface is typed by each area's facade (engine.ts, kernels.ts, ...); here it is opaque.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Addon = Record<string, any>;

let cached: Addon | undefined;

export function addonPath(): string {
  return process.env.XATTN_ADDON ?? path.join(projectRoot(), 'build/native/Release/xattn.node');
}

export function loadAddon(): Addon {
  if (cached) return cached;
  const file = addonPath();
  if (!existsSync(file)) {
    throw new Error(`the native addon is not built (${file} is missing): run 'npm install' or 'npm run build:native'`);
  }
  cached = createRequire(import.meta.url)(file) as Addon;
  return cached;
}
