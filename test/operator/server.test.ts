import client from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAddress, startProbeServer, type ProbeServer } from '../../operator/server.js';

describe('parseAddress', () => {
  it.each([
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['8081', { host: '0.0.0.0', port: 8081 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
  ])('%s', (a, want) => expect(parseAddress(a)).toEqual(want));
  it('rejects nonsense', () => {
    expect(() => parseAddress('localhost')).toThrow(/not a listen address/);
    expect(() => parseAddress(':70000')).toThrow(/not a listen address/);
  });
});

describe('probe server', () => {
  let server: ProbeServer | undefined;
  afterEach(async () => server?.close());

  it('answers /healthz, /readyz from its callbacks, and /metrics from the registry', async () => {
    const registry = new client.Registry();
    new client.Counter({ name: 'demo_total', help: 'x', registers: [registry] }).inc(3);
    let ready = false;
    server = await startProbeServer({ address: '127.0.0.1:0', registry, ready: () => ready });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const m = await fetch(`${server.url}/metrics`);
    expect(m.headers.get('content-type')).toContain('text/plain');
    expect(await m.text()).toContain('demo_total 3');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });
});
