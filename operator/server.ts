// /healthz, /readyz and /metrics over node:http.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface ProbeServerOptions {
  /** "host:port", ":port" or "port"; port 0 picks a free one. */
  address: string;
  registry?: Registry;
  healthy?: () => boolean;
  ready?: () => boolean;
}

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:(.*):)?([0-9]{1,5})$/.exec(address.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`'${address}' is not a listen address (host:port, :port or port)`);
  const host = m[1] ? m[1].replace(/^\[(.*)\]$/, '$1') : '0.0.0.0';
  return { host, port };
}

export interface ProbeServer {
  url: string;
  close(): Promise<void>;
}

export async function startProbeServer(o: ProbeServerOptions): Promise<ProbeServer> {
  const { host, port } = parseAddress(o.address);
  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (ok: boolean) => {
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    };
    try {
      if (path === '/healthz' || path === '/livez') return answer(o.healthy?.() ?? true);
      if (path === '/readyz') return answer(o.ready?.() ?? true);
      if (path === '/metrics' && o.registry) {
        const body = await o.registry.metrics();
        res.writeHead(200, { 'Content-Type': o.registry.contentType });
        return res.end(body);
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
    } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`${(e as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
