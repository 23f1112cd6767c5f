// The TCP transport's handshake, framing checks and failure modes, with every rank in this process.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

import { createTcpTransport, type TcpTransport } from '../../runtime/rendezvous/transport.js';
import { freePort } from '../cluster/harness/processes.js';

const TOKEN = 'local-transport-token-0123456789';
const AUTH_MSG = "authentication failed: peer does not hold this job's token";

let live: TcpTransport[] = [];
afterEach(() => {
  for (const t of live) t.close();
  live = [];
});

function make(rank: number, worldSize: number, opts: { token?: string; timeoutMs?: number } = {}): TcpTransport {
  const t = createTcpTransport({ rank, worldSize, host: '127.0.0.1', timeoutMs: 2000, ...opts });
  live.push(t);
  return t;
}

const addressesOf = (ts: TcpTransport[]) => ts.map((t) => `127.0.0.1:${t.port}`);

async function world(n: number, opts: { token?: string; timeoutMs?: number } = {}): Promise<TcpTransport[]> {
  const ts = Array.from({ length: n }, (_, r) => make(r, n, opts));
  await Promise.all(ts.map((t) => t.connect(addressesOf(ts))));
  return ts;
}

describe('TCP transport handshake', () => {
  it('connects a full mesh with a shared token and moves data both ways', async () => {
    const [a, b] = await world(2, { token: TOKEN });
    const [fromB, fromA] = await Promise.all([
      a!.exchange({ send: Buffer.from('ping'), to: 1, recvBytes: 4, from: 1 }),
      b!.exchange({ send: Buffer.from('pong'), to: 0, recvBytes: 4, from: 0 }),
    ]);
    expect(Buffer.from(fromB!).toString()).toBe('pong');
    expect(Buffer.from(fromA!).toString()).toBe('ping');
  });

  it('refuses a peer with the wrong token on both sides', async () => {
    const a = make(0, 2, { token: TOKEN, timeoutMs: 800 });
    const b = make(1, 2, { token: 'a-different-token-0123456789', timeoutMs: 800 });
    const [ra, rb] = await Promise.allSettled([a.connect(addressesOf([a, b])), b.connect(addressesOf([a, b]))]);
    expect((rb as PromiseRejectedResult).reason).toMatchObject({ code: 'XATTN_E_AUTH', message: expect.stringContaining(AUTH_MSG) });
    expect((ra as PromiseRejectedResult).reason).toMatchObject({ code: 'XATTN_E_AUTH', message: expect.stringContaining(AUTH_MSG) });
  });

  it('refuses a peer without a token when this rank has one, and the reverse', async () => {
    for (const [ta, tb] of [[TOKEN, undefined], [undefined, TOKEN]] as const) {
      const a = make(0, 2, { token: ta, timeoutMs: 600 });
      const b = make(1, 2, { token: tb, timeoutMs: 600 });
      const [ra, rb] = await Promise.allSettled([a.connect(addressesOf([a, b])), b.connect(addressesOf([a, b]))]);
      expect((ra as PromiseRejectedResult).reason?.code).toBe('XATTN_E_AUTH');
      expect((rb as PromiseRejectedResult).reason?.code).toBe('XATTN_E_AUTH');
    }
  });

  it('refuses a peer from a world of another size', async () => {
    const a = make(0, 2, { timeoutMs: 800 });
    const b = make(1, 3, { timeoutMs: 800 });
    const [ra, rb] = await Promise.allSettled([a.connect(addressesOf([a, b])), b.connect([...addressesOf([a, b]), '127.0.0.1:1'])]);
    expect((rb as PromiseRejectedResult).reason).toMatchObject({
      code: 'XATTN_E_TRANSPORT',
      message: expect.stringContaining('world size mismatch: peer has 3, this job has 2'),
    });
    expect((ra as PromiseRejectedResult).reason).toMatchObject({
      code: 'XATTN_E_TIMEOUT',
      message: expect.stringMatching(/rank 0 waited 0.8 s for rank 1 to connect; refused 1 connection\(s\): .*world size mismatch/),
    });
  });

  it('refuses an impostor that cannot prove it holds the token, without proving itself to it', async () => {
    // Speaks the handshake (native/core/tcp_handshake.cc): 12-byte header "XTH1", type, pad, u32 length.
    const frame = (type: number, payload: Buffer) => {
      const h = Buffer.alloc(12);
      h.write('XTH1', 0, 'latin1');
      h[4] = type;
      h.writeUInt32LE(payload.length, 8);
      return Buffer.concat([h, payload]);
    };
    let received = Buffer.alloc(0);
    const impostor = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        const first = received.length === 0;
        received = Buffer.concat([received, d]);
        if (!first) return;
        const challenge = Buffer.alloc(73); // rank 0, world 2, auth 1, nonce, made-up MAC
        challenge.writeInt32LE(0, 0);
        challenge.writeInt32LE(2, 4);
        challenge[8] = 1;
        challenge.fill(0x5a, 9);
        s.write(frame(2, challenge));
      });
    });
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const port = (impostor.address() as net.AddressInfo).port;
    try {
      const b = make(1, 2, { token: TOKEN, timeoutMs: 1000 });
      await expect(b.connect([`127.0.0.1:${port}`, `127.0.0.1:${b.port}`])).rejects.toMatchObject({
        code: 'XATTN_E_AUTH',
        message: expect.stringContaining(`${AUTH_MSG} (rank 0 at 127.0.0.1:${port})`),
      });
      await new Promise((r) => setTimeout(r, 50));
      const helloBytes = 12 + 41;
      expect(received[4]).toBe(1); // hello
      expect(received[helloBytes + 4]).toBe(5); // then a refusal, not a proof
      expect(received.includes(Buffer.from(TOKEN))).toBe(false);
    } finally {
      impostor.close();
    }
  });

  it('refuses a stranger on the port and still connects the real peer afterwards', async () => {
    const a = make(0, 2, { token: TOKEN });
    const b = make(1, 2, { token: TOKEN });
    const stranger = net.connect({ host: '127.0.0.1', port: a.port });
    stranger.on('error', () => {});
    const strangerClosed = new Promise((r) => stranger.on('close', r));
    stranger.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const connectA = a.connect(addressesOf([a, b]));
    await strangerClosed;
    await Promise.all([connectA, b.connect(addressesOf([a, b]))]);
    const got = await Promise.all([a.exchange({ send: Buffer.from('ok'), to: 1 }), b.exchange({ recvBytes: 2, from: 0 })]);
    expect(Buffer.from(got[1]!).toString()).toBe('ok');
  });

  it('gives up dialing a rank that never listens, naming it and its address', async () => {
    const port = await freePort();
    const b = make(1, 2, { timeoutMs: 500 });
    await expect(b.connect([`127.0.0.1:${port}`, `127.0.0.1:${b.port}`])).rejects.toMatchObject({
      code: 'XATTN_E_TIMEOUT',
      message: `rank 1 could not connect to rank 0 at 127.0.0.1:${port} within 0.5 s (last error: Connection refused)`,
    });
  });

  it('close() during connect stops dialing at once instead of waiting for the timeout', async () => {
    const port = await freePort();
    const b = make(1, 2, { timeoutMs: 60_000 });
    const connecting = b.connect([`127.0.0.1:${port}`, `127.0.0.1:${b.port}`]);
    await new Promise((r) => setTimeout(r, 100));
    b.close();
    await expect(connecting).rejects.toMatchObject({ code: 'XATTN_E_TRANSPORT', message: expect.stringContaining('closed while connecting') });
  }, 10_000);
});

describe('TCP transport operations', () => {
  it('a receive length that differs from the sent length is a clear error, not corruption', async () => {
    const [a, b] = await world(2);
    const [, rb] = await Promise.allSettled([a!.exchange({ send: new Uint8Array(4), to: 1 }), b!.exchange({ recvBytes: 8, from: 0 })]);
    expect((rb as PromiseRejectedResult).reason).toMatchObject({
      code: 'XATTN_E_TRANSPORT',
      message: 'rank 1 expected 8 bytes from rank 0 but rank 0 sent 4 (message #0): the ranks disagree on the schedule or tensor shapes',
    });
    // Poisoned: later calls fail with the same error.
    await expect(b!.barrier()).rejects.toMatchObject({ code: 'XATTN_E_TRANSPORT', message: expect.stringContaining('expected 8 bytes') });
  });

  it('a receive that makes no progress times out naming the silent peer', async () => {
    const [a] = await world(2, { timeoutMs: 400 });
    await expect(a!.exchange({ recvBytes: 16, from: 1 })).rejects.toMatchObject({
      code: 'XATTN_E_TIMEOUT',
      message: expect.stringContaining('rank 0 waited 0.4 s for data from rank 1'),
    });
  });

  it('close fails the operation in flight and every later one', async () => {
    const [a] = await world(2);
    const pending = a!.exchange({ recvBytes: 16, from: 1 });
    a!.close();
    await expect(pending).rejects.toMatchObject({ code: 'XATTN_E_TRANSPORT', message: 'the transport was closed' });
    await expect(a!.barrier()).rejects.toMatchObject({ code: 'XATTN_E_TRANSPORT' });
  });

  it('a rank in a world of one exchanges with itself and reduces to itself', async () => {
    const [solo] = await world(1);
    const got = await solo!.exchange({ send: Buffer.from('self'), to: 0, recvBytes: 4, from: 0 });
    expect(Buffer.from(got!).toString()).toBe('self');
    const data = Float32Array.of(1.5, -2);
    await solo!.allReduce(data);
    expect(Array.from(data)).toEqual([1.5, -2]);
    expect(solo!.bytesSent).toBe(0);
  });

  it('refuses a second operation while one is still running', async () => {
    const [a] = await world(2);
    const first = a!.exchange({ recvBytes: 4, from: 1 });
    expect(() => a!.barrier()).toThrow(/another operation is still running/);
    a!.close();
    await first.catch(() => {});
  });
});

describe('TCP transport argument checks', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as { code?: string }).code;
    }
    return 'no error';
  };

  it('rejects a rank outside the world and a non-positive timeout', () => {
    expect(code(() => make(2, 2))).toBe('XATTN_E_INVALID_ARGUMENT');
    expect(code(() => make(0, 2, { timeoutMs: 0 }))).toBe('XATTN_E_INVALID_ARGUMENT');
  });

  it('rejects a wrong number of addresses and a malformed address', async () => {
    const t = make(1, 2);
    await expect(t.connect(['127.0.0.1:1'])).rejects.toMatchObject({ code: 'XATTN_E_INVALID_ARGUMENT' });
    const u = make(1, 2);
    await expect(u.connect(['no-port-here', `127.0.0.1:${u.port}`])).rejects.toMatchObject({
      code: 'XATTN_E_INVALID_ARGUMENT',
      message: "bad peer address 'no-port-here': expected host:port",
    });
  });

  it('rejects operations before connect and ranks outside the world', async () => {
    const t = make(0, 2);
    await expect(t.exchange({ recvBytes: 4, from: 1 })).rejects.toThrow('the transport is not connected yet: call connect() first');
    const [a] = await world(2);
    await expect(a!.exchange({ send: new Uint8Array(1), to: 5 })).rejects.toThrow('exchange target rank 5 is outside 0..1');
    expect(() => a!.allReduce(new Float64Array(2) as unknown as Float32Array)).toThrow('allReduce needs a Float32Array');
  });
});
