// A small JSON client for the Kubernetes REST API over node:http(s), authenticated by a
// client-node KubeConfig. Responses stay plain JSON (timestamps are strings), so informer
// objects, list results and write results all look alike.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  readonly code = 'XATTN_E_KUBE_API';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
  }
}

export const isStatus = (e: unknown, ...codes: number[]): boolean => e instanceof KubeApiError && codes.includes(e.status);

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  timeoutMs?: number;
}

export type RequestObserver = (method: string, status: number | 'error') => void;

export class KubeRest {
  private agent?: http.Agent;
  readonly server: string;

  constructor(
    readonly kc: KubeConfig,
    private readonly observe?: RequestObserver,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
  }

  get<T = any>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.request('GET', path, opts);
  }

  async request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: http.OutgoingHttpHeaders = { Accept: opts.accept ?? 'application/json' };
    const reqOpts: https.RequestOptions = { method, headers };
    // Re-applied per request: in-cluster service-account tokens rotate.
    await this.kc.applyToHTTPSOptions(reqOpts);
    const secure = url.protocol === 'https:';
    this.agent ??= secure
      ? new https.Agent({ keepAlive: true, maxSockets: 32, ca: reqOpts.ca, cert: reqOpts.cert, key: reqOpts.key, rejectUnauthorized: reqOpts.rejectUnauthorized, servername: reqOpts.servername })
      : new http.Agent({ keepAlive: true, maxSockets: 32 });
    reqOpts.agent = this.agent;
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    if (payload) {
      const h = reqOpts.headers as http.OutgoingHttpHeaders;
      h['Content-Type'] = opts.contentType ?? 'application/json';
      h['Content-Length'] = payload.length;
    }
    const send = secure ? https.request : http.request;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, reqOpts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          this.observe?.(method, status);
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          if (status >= 200 && status < 300) resolve(json as T);
          else reject(new KubeApiError(status, json?.reason ?? res.statusMessage ?? 'Error', json?.message ?? text.slice(0, 500), method, url.pathname));
        });
      });
      req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
      req.on('error', (e) => {
        this.observe?.(method, 'error');
        reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}
