// `xattn operator` explains a kubeconfig it cannot use instead of surfacing a bare ENOENT.
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKubeConfig } from '../../operator/index.js';

describe('loadKubeConfig', () => {
  it('names a missing kubeconfig file', () => {
    expect(() => loadKubeConfig('/nonexistent/kubeconfig')).toThrow(/cannot load the kubeconfig \/nonexistent\/kubeconfig: ENOENT/);
  });

  it('names a kubeconfig that is not YAML', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'xattn-kc-')), 'config');
    writeFileSync(file, 'clusters: [broken');
    expect(() => loadKubeConfig(file)).toThrow(new RegExp(`cannot load the kubeconfig ${file}`));
  });
});
