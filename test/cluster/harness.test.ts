// The harness's wait: a probe that finds its process dead ends the wait at once, with the log (a
// wait that ran out its timeout instead would fail this test on the suite's 120 s test timeout).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mustBeRunning, startProcess, waitFor } from './harness/processes.js';

describe('waitFor', () => {
  it('keeps probing through errors until the probe succeeds', async () => {
    let calls = 0;
    const v = await waitFor('the third call', () => {
      if (++calls < 3) throw new Error('not yet');
      return 'ready';
    }, 5_000, 1);
    expect(v).toBe('ready');
  });

  it('gives up at once when the process it waits on has exited, naming it and quoting its log', async () => {
    const log = path.join(mkdtempSync(path.join(tmpdir(), 'xattn-wait-')), 'p.log');
    const p = startProcess(process.execPath, ['-e', 'console.error("bind: address already in use"); process.exit(3)'], log);
    await p.exited;
    await waitFor('its log on disk', () => readFileSync(log, 'utf8').includes('address already in use'), 10_000, 10);
    const err = await waitFor('a server that died', () => {
      mustBeRunning(p, 'the server');
      return false;
    }, 600_000, 10).catch((e: Error) => e);
    expect(String(err)).toMatch(/the server exited with 3/);
    expect(String(err)).toMatch(/address already in use/);
  });
});
