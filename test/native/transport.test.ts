// The TCP transport across real processes: each rank is a child running test/fixtures/transport_worker.ts
// (rendezvous -> connectTcpTransport -> scenario); results are checked against data computed here.
import { afterEach, describe, expect, it } from 'vitest';

import { type RankProcess, spawnWorld } from '../fixtures/transport_spawn.js';
import { BIG_BYTES, patternBytes, patternFloats, REDUCE_LENGTHS, RING_SIZES, ringSeed, sha256 } from '../fixtures/transport_pattern.js';

const TOKEN = 'transport-test-token-0123456789';

let procs: RankProcess[] = [];
afterEach(() => {
  for (const p of procs) p.kill();
  procs = [];
});

async function outcomes(ps: RankProcess[]) {
  procs = ps;
  return Promise.all(ps.map((p) => p.outcome));
}

describe('TCP transport across processes', () => {
  it('a ring exchange across 4 processes delivers the exact bytes (0 B to 1 MiB)', async () => {
    const out = await outcomes(await spawnWorld(4, { scenario: 'ring', timeoutMs: 30_000, rdvToken: TOKEN, token: TOKEN }));
    out.forEach((o, rank) => {
      expect(o.event, o.message).toBe('done');
      const prev = (rank + 3) % 4;
      expect(o.hashes).toEqual(RING_SIZES.map((size) => sha256(patternBytes(ringSeed(prev, size), size))));
      expect(o.bytesSent).toBe(RING_SIZES.reduce((a, b) => a + b, 0));
    });
  });

  it('two ranks send each other 64 MiB at the same time without deadlock', async () => {
    const out = await outcomes(await spawnWorld(2, { scenario: 'big', timeoutMs: 30_000, token: TOKEN }));
    out.forEach((o, rank) => {
      expect(o.event, o.message).toBe('done');
      expect(o.length).toBe(BIG_BYTES);
      expect(o.hash).toBe(sha256(patternBytes(1 - rank + 7, BIG_BYTES)));
    });
  });

  it('allReduce equals the float64 sum on every rank, bit-identical across ranks', async () => {
    const world = 3;
    const out = await outcomes(await spawnWorld(world, { scenario: 'allreduce', timeoutMs: 30_000 }));
    for (const o of out) expect(o.event, o.message).toBe('done');
    REDUCE_LENGTHS.forEach((n, i) => {
      const results = out.map((o) => (o.sums as string[])[i]!);
      expect(new Set(results).size).toBe(1);
      const got = new Float32Array(Uint8Array.from(Buffer.from(results[0]!, 'base64')).buffer);
      const inputs = Array.from({ length: world }, (_, r) => patternFloats(r * 31 + n, n));
      expect(got.length).toBe(n);
      for (let j = 0; j < n; j++) {
        const want = inputs.reduce((s, x) => s + x[j]!, 0); // float64
        expect(Math.abs(got[j]! - want), `element ${j} of ${n}`).toBeLessThan(2e-6);
      }
    });
  });
});

describe('TCP transport failures across processes', () => {
  it('refuses a rank that holds a different token, on both sides', async () => {
    const out = await outcomes(
      await spawnWorld(2, { scenario: 'ring', timeoutMs: 3000, rdvToken: TOKEN }, (rank) => ({
        token: rank === 1 ? 'some-other-jobs-token-0000000' : TOKEN,
      })),
    );
    for (const o of out) {
      expect(o.event).toBe('error');
      expect(o.code).toBe('XATTN_E_AUTH');
    }
    expect(out[1]!.message).toContain("authentication failed: peer does not hold this job's token");
    expect(out[0]!.message).toContain("authentication failed: peer does not hold this job's token");
    expect(out[0]!.message).toContain('rank 0 waited 3 s for rank 1 to connect');
  }, 30_000);

  /** Ranks 0 and 1 wait for data from rank 2, which never sends; resolves once all are in place. */
  async function worldWithSilentRank2(timeoutMs: number): Promise<RankProcess[]> {
    procs = await spawnWorld(3, { scenario: 'recv-from-victim', timeoutMs, victim: 2 }, (rank) => (rank === 2 ? { scenario: 'idle' } : {}));
    await Promise.all([procs[0]!.waitFor('waiting'), procs[1]!.waitFor('waiting'), procs[2]!.waitFor('idle')]);
    return procs;
  }

  it('a peer killed with SIGKILL makes the survivors fail with PeerLost instead of hanging', async () => {
    const ps = await worldWithSilentRank2(8000);
    ps[2]!.kill('SIGKILL');
    for (const o of await Promise.all([ps[0]!.outcome, ps[1]!.outcome])) {
      expect(o.event).toBe('error');
      expect(o.code).toBe('XATTN_E_PEER_LOST');
      expect(o.message).toContain('rank 2 closed the connection (it probably died)');
    }
  }, 30_000);

  it('a peer that stops responding (SIGSTOP) makes the survivors time out naming it', async () => {
    const ps = await worldWithSilentRank2(3000);
    ps[2]!.kill('SIGSTOP');
    (await Promise.all([ps[0]!.outcome, ps[1]!.outcome])).forEach((o, rank) => {
      expect(o.event).toBe('error');
      expect(o.code).toBe('XATTN_E_TIMEOUT');
      expect(o.message).toContain(`rank ${rank} waited 3 s for data from rank 2`);
    });
  }, 30_000);
});
