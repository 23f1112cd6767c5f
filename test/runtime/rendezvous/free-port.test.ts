import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ephemeralStart, freePort, freePortRange } from '../../../runtime/rendezvous/free-port.js';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

describe('freePort', () => {
  it('reads where the ephemeral range starts, with a fallback', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'xattn-ports-'));
    writeFileSync(path.join(dir, 'range'), '40000\t60999\n');
    expect(ephemeralStart(path.join(dir, 'range'))).toBe(40_000);
    writeFileSync(path.join(dir, 'bad'), 'garbage\n');
    expect(ephemeralStart(path.join(dir, 'bad'))).toBe(32_768);
    expect(ephemeralStart(path.join(dir, 'missing'))).toBe(32_768);
  });

  it('picks ports below the ephemeral range, where no outgoing connection can take them', async () => {
    const top = ephemeralStart();
    for (let i = 0; i < 20; i++) {
      const p = await freePort();
      expect(p).toBeGreaterThanOrEqual(10_000);
      expect(p).toBeLessThan(top);
    }
  });

  it('skips a range where any port is taken', async () => {
    const taken = await freePortRange(3);
    const blocker = await listen(taken + 2);
    try {
      // The first draw lands on the blocked range, the second must move on.
      const top = ephemeralStart() - 3;
      const draws = [(taken - 10_000 + 0.5) / (top - 10_000), 0.5];
      const base = await freePortRange(3, '127.0.0.1', () => draws.shift() ?? Math.random());
      expect(draws).toEqual([]); // both draws used: the blocked range was tried and refused
      expect(base).not.toBe(taken);
      for (let i = 0; i < 3; i++) expect(base + i).not.toBe(taken + 2);
    } finally {
      blocker.close();
    }
  });
});
