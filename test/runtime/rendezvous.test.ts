import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

import { joinRendezvous, type Rendezvous, type RendezvousOptions } from '../../runtime/rendezvous/index.js';
import { freePort } from '../cluster/harness/processes.js';

const TOKEN = 'correct-horse-battery-staple-0123';
const AUTH_MSG = "authentication failed: peer does not hold this job's token";

let open: Rendezvous[] = [];
afterEach(async () => {
  // Non-zero ranks first: rank 0 serves until they have left.
  await Promise.all(open.filter((r) => r.rank !== 0).map((r) => r.close()));
  await Promise.all(open.filter((r) => r.rank === 0).map((r) => r.close()));
  open = [];
});

function collectingLogger() {
  const lines: string[] = [];
  return { lines, warn: (m: string) => void lines.push(m) };
}

async function join(opts: Partial<RendezvousOptions> & { rank: number; masterPort: number }): Promise<Rendezvous> {
  // Short timeout: rank 0's close() waits that long for ranks a test never starts.
  const rdv = await joinRendezvous({ masterAddr: '127.0.0.1', worldSize: 4, timeoutMs: 1000, ...opts });
  open.push(rdv);
  return rdv;
}

/** Rank 0 hosting a store on a free port, plus the options other ranks need to reach it. */
async function host(opts: Partial<RendezvousOptions> = {}) {
  const logger = collectingLogger();
  const rank0 = await join({ rank: 0, masterPort: 0, logger, ...opts });
  return { rank0, port: rank0.storePort, logger };
}

/** A raw TCP connection to the store, for sending what no honest client would. */
function rawConnection(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, closed };
}

describe('rendezvous store: collectives', () => {
  it('allGather returns every rank value indexed by rank, tags may repeat, barrier releases everyone', async () => {
    const { rank0, port } = await host();
    const ranks = [rank0, ...(await Promise.all([1, 2, 3].map((rank) => join({ rank, masterPort: port }))))];

    const gathered = await Promise.all(ranks.map((r) => r.allGather('addr', `value-of-${r.rank}`)));
    for (const g of gathered) expect(g).toEqual(['value-of-0', 'value-of-1', 'value-of-2', 'value-of-3']);

    // Same tag again: a new generation, not the old values.
    const again = await Promise.all(ranks.map((r) => r.allGather('addr', `second-${r.rank}`)));
    for (const g of again) expect(g).toEqual(['second-0', 'second-1', 'second-2', 'second-3']);

    await Promise.all(ranks.map((r) => r.barrier('step-1')));
  });

  it('get waits until another rank sets the key', async () => {
    const { rank0, port } = await host({ worldSize: 2 });
    const rank1 = await join({ rank: 1, masterPort: port, worldSize: 2 });
    const pending = rank1.get('nccl-id');
    await new Promise((r) => setTimeout(r, 50));
    await rank0.set('nccl-id', 'abc');
    await expect(pending).resolves.toBe('abc');
  });

  it('a rank that starts before the store keeps retrying until rank 0 hosts it', async () => {
    const port = await freePort();
    const early = join({ rank: 1, masterPort: port, worldSize: 2 });
    await new Promise((r) => setTimeout(r, 300));
    const rank0 = await join({ rank: 0, masterPort: port, worldSize: 2 });
    const rank1 = await early;
    const [a, b] = await Promise.all([rank0.allGather('x', 'a'), rank1.allGather('x', 'b')]);
    expect(a).toEqual(['a', 'b']);
    expect(b).toEqual(['a', 'b']);
  });

  it('rank 0 stops serving once every rank has closed', async () => {
    const { rank0, port } = await host({ worldSize: 2 });
    const rank1 = await join({ rank: 1, masterPort: port, worldSize: 2 });
    const stopped = rank0.close();
    await rank1.close();
    await stopped;
    const { closed, socket } = rawConnection(port);
    const refused = new Promise((resolve) => socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    await closed;
    expect(await refused).toBe('ECONNREFUSED');
  });
});

describe('rendezvous store: timeouts', () => {
  it('a barrier that times out names the ranks that never arrived', async () => {
    const { rank0, port } = await host({ timeoutMs: 300 });
    const rank1 = await join({ rank: 1, masterPort: port, timeoutMs: 300 });
    const results = await Promise.allSettled([rank0.barrier('ready'), rank1.barrier('ready')]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason;
      expect(e.code).toBe('XATTN_E_RENDEZVOUS_TIMEOUT');
      expect(e.message).toBe("rendezvous: ranks 2, 3 of 4 did not arrive at barrier 'ready' within 0.3 s");
    }
  });

  it('a single missing rank is named in an allGather timeout', async () => {
    const { rank0, port } = await host({ worldSize: 3, timeoutMs: 300 });
    const rank2 = await join({ rank: 2, masterPort: port, worldSize: 3, timeoutMs: 300 });
    const results = await Promise.allSettled([rank0.allGather('t', ''), rank2.allGather('t', '')]);
    for (const r of results) {
      expect((r as PromiseRejectedResult).reason?.message).toBe("rendezvous: rank 1 of 3 did not arrive at allGather 't' within 0.3 s");
    }
  });

  it('get names the key that was never set', async () => {
    const { rank0 } = await host({ timeoutMs: 200 });
    await expect(rank0.get('never')).rejects.toMatchObject({
      code: 'XATTN_E_RENDEZVOUS_TIMEOUT',
      message: "rendezvous: key 'never' was not set within 0.2 s",
    });
  });

  it('an unreachable store gives up after the timeout with the address', async () => {
    const port = await freePort();
    await expect(joinRendezvous({ masterAddr: '127.0.0.1', masterPort: port, rank: 1, worldSize: 2, timeoutMs: 400 })).rejects.toMatchObject({
      code: 'XATTN_E_RENDEZVOUS_TIMEOUT',
      message: expect.stringMatching(new RegExp(`^could not reach the rendezvous store at 127\\.0\\.0\\.1:${port} within 0\\.4 s \\(last error: ECONNREFUSED\\)$`)),
    });
  });
});

describe('rendezvous store: authentication', () => {
  it('refuses a rank with the wrong token, on both sides, and keeps serving', async () => {
    const { rank0, port, logger } = await host({ worldSize: 2, token: TOKEN });
    const err = await join({ rank: 1, masterPort: port, worldSize: 2, token: 'not-the-job-token-xxxxxxxx' }).catch((e) => e);
    expect(err.code).toBe('XATTN_E_AUTH');
    expect(err.message).toContain(AUTH_MSG);
    expect(logger.lines.some((l) => l.includes(AUTH_MSG))).toBe(true);

    const rank1 = await join({ rank: 1, masterPort: port, worldSize: 2, token: TOKEN });
    const [a] = await Promise.all([rank0.allGather('ok', '0'), rank1.allGather('ok', '1')]);
    expect(a).toEqual(['0', '1']);
  });

  it('refuses a rank without a token when the job has one', async () => {
    const { port, logger } = await host({ worldSize: 2, token: TOKEN });
    const err = await join({ rank: 1, masterPort: port, worldSize: 2 }).catch((e) => e);
    expect(err.code).toBe('XATTN_E_AUTH');
    expect(err.message).toContain(AUTH_MSG);
    expect(err.message).toContain('set XATTN_JOB_TOKEN');
    expect(logger.lines.some((l) => l.includes(AUTH_MSG))).toBe(true);
  });

  it('a client with a token refuses a store that cannot prove it holds the token', async () => {
    // An impostor store: asks for authentication, then answers with a made-up proof.
    const impostor = net.createServer((s) => {
      s.write(JSON.stringify({ t: 'challenge', nonce: 'ab'.repeat(32), auth: true }) + '\n');
      s.once('data', () => s.write(JSON.stringify({ t: 'welcome', proof: 'cd'.repeat(32) }) + '\n'));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const port = (impostor.address() as net.AddressInfo).port;
    try {
      const err = await joinRendezvous({ masterAddr: '127.0.0.1', masterPort: port, rank: 1, worldSize: 2, token: TOKEN, timeoutMs: 2000 }).catch((e) => e);
      expect(err.code).toBe('XATTN_E_AUTH');
      expect(err.message).toContain(AUTH_MSG);
    } finally {
      impostor.close();
    }
  });

  it('never sends the token itself', async () => {
    const seen: Buffer[] = [];
    const spy = net.createServer((s) => {
      s.write(JSON.stringify({ t: 'challenge', nonce: 'ab'.repeat(32), auth: true }) + '\n');
      s.on('data', (d: Buffer) => {
        seen.push(d);
        s.destroy();
      });
    });
    await new Promise<void>((r) => spy.listen(0, '127.0.0.1', () => r()));
    const port = (spy.address() as net.AddressInfo).port;
    await joinRendezvous({ masterAddr: '127.0.0.1', masterPort: port, rank: 1, worldSize: 2, token: TOKEN, timeoutMs: 1000 }).catch(() => {});
    spy.close();
    const sent = Buffer.concat(seen).toString();
    expect(sent).toContain('"proof"');
    expect(sent).not.toContain(TOKEN);
  });
});

describe('rendezvous store: refused joins', () => {
  it('refuses a second join with the same rank', async () => {
    const { port } = await host({ worldSize: 3 });
    await join({ rank: 1, masterPort: port, worldSize: 3 });
    await expect(join({ rank: 1, masterPort: port, worldSize: 3 })).rejects.toMatchObject({
      code: 'XATTN_E_RENDEZVOUS',
      message: expect.stringContaining('rank 1 has already joined'),
    });
  });

  it('refuses a world size mismatch', async () => {
    const { port } = await host({ worldSize: 4 });
    await expect(join({ rank: 1, masterPort: port, worldSize: 3 })).rejects.toMatchObject({
      code: 'XATTN_E_RENDEZVOUS',
      message: expect.stringContaining('world size mismatch: rank 1 says worldSize 3, this job has 4'),
    });
  });

  it('refuses a rank outside the world (checked by the store, not only locally)', async () => {
    const { port, logger } = await host({ worldSize: 2 });
    // Claim worldSize 2 but rank 5 through a raw hello: the client library would refuse this itself.
    const { socket, closed } = rawConnection(port);
    let reply = '';
    socket.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.includes('challenge') && !reply.includes('hello-sent')) {
        reply += 'hello-sent';
        socket.write(JSON.stringify({ t: 'hello', rank: 5, worldSize: 2, jobName: 'xattn', nonce: 'ef'.repeat(32) }) + '\n');
      }
    });
    await closed;
    expect(reply).toContain('rank 5 is out of range for world size 2');
    expect(logger.lines.some((l) => l.includes('rank 5 is out of range'))).toBe(true);
  });

  it('rejects a rank >= worldSize before connecting', async () => {
    await expect(joinRendezvous({ masterAddr: '127.0.0.1', masterPort: 1, rank: 2, worldSize: 2, timeoutMs: 100 })).rejects.toThrow(
      'rendezvous: rank 2 is outside 0..1',
    );
  });
});

describe('rendezvous store: hostile input', () => {
  async function expectDropped(send: (s: net.Socket) => void, reason: string) {
    const { rank0, port, logger } = await host({ worldSize: 2 });
    const { socket, closed } = rawConnection(port);
    socket.once('data', () => send(socket));
    await closed;
    expect(logger.lines.some((l) => l.includes('dropped the connection') && l.includes(reason))).toBe(true);
    // The store still serves honest ranks.
    const rank1 = await join({ rank: 1, masterPort: port, worldSize: 2 });
    const [g] = await Promise.all([rank0.allGather('alive', 'a'), rank1.allGather('alive', 'b')]);
    expect(g).toEqual(['a', 'b']);
  }

  it('drops a connection that sends malformed JSON', () => expectDropped((s) => s.write('{"t": "hello", oops\n'), 'malformed JSON'));

  it('drops a connection that sends an oversized message', () =>
    expectDropped((s) => s.write(Buffer.alloc((1 << 20) + 16, 0x61)), 'exceeds the 1048576-byte limit'));

  it('drops a connection whose message does not match the protocol', () =>
    expectDropped((s) => s.write(JSON.stringify({ t: 'hello', rank: 'one' }) + '\n'), 'invalid message'));

  it('drops a connection that uses the store before introducing itself', () =>
    expectDropped((s) => s.write(JSON.stringify({ t: 'set', id: 1, key: 'k', value: 'v' }) + '\n'), "sent 'set' before introducing itself"));
});
