// examples/train-tiny.yaml through `xattn run` (runLocal): two CPU workers train, checkpoint and
// summarise, and a second run with the same checkpoint directory resumes instead of starting over.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runLocal } from '../../../runtime/launcher/run-local.js';
import { tempDirs } from './temp-dirs.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const tempDir = tempDirs('xattn-example');

function sink() {
  const chunks: string[] = [];
  return { stream: new Writable({ write: (c, _e, cb) => (chunks.push(String(c)), cb()) }), text: () => chunks.join('') };
}

describe('examples/train-tiny.yaml', () => {
  it('trains on two workers, checkpoints, and resumes on a second run', async () => {
    const dir = tempDir();
    const opts = { workerEntry: path.join(root, 'bin/xattn.js'), checkpointDir: dir, tty: false };
    const first = sink();
    const s = await runLocal(path.join(root, 'examples/train-tiny.yaml'), { ...opts, steps: 20, stdout: first.stream, stderr: first.stream });
    expect(s).toMatchObject({ job: 'train-tiny', mode: 'train', worldSize: 2, steps: 20, backend: 'cpu' });
    expect(s.loss).toBeGreaterThan(0);
    // The synthetic targets' teacher forward is timed apart from the steps (summary.test.ts: its row).
    expect(s.medianBatchSeconds).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toEqual(['step-00000020.json']);
    const second = sink();
    const again = await runLocal(path.join(root, 'examples/train-tiny.yaml'), { ...opts, steps: 25, stdout: second.stream, stderr: second.stream });
    expect(again.steps).toBe(5);
    expect(second.text()).toMatch(/resumed from step 20 /);
  });
});
