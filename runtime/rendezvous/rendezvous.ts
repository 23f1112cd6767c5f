// joinRendezvous: rank 0 hosts the store (RendezvousServer) and every rank, rank 0 included, joins it
// as a client. On top of set/wait the session offers allGather and barrier with clear timeouts.
import { XattnError } from '../errors.js';
import { RendezvousClient, StoreRequestError } from './client.js';
import { rankList, seconds } from './format.js';
import { RendezvousServer, type Logger } from './server.js';

export interface RendezvousOptions {
  masterAddr: string;
  /** Port of rank 0's store; rank 0 may pass 0 to pick a free port (read it back from storePort). */
  masterPort: number;
  rank: number;
  worldSize: number;
  /** The job token (XATTN_JOB_TOKEN); without one, joins are not authenticated. */
  token?: string;
  /** Limit for reaching the store and for each wait (get, allGather, barrier). */
  timeoutMs: number;
  jobName?: string;
  logger?: Logger;
}

export interface Rendezvous {
  readonly rank: number;
  readonly worldSize: number;
  /** The store's port (useful when rank 0 asked for port 0). */
  readonly storePort: number;
  set(key: string, value: string): Promise<void>;
  /** Waits until the key is set (or the timeout passes). */
  get(key: string): Promise<string>;
  /** Every rank's value, indexed by rank. Every rank must call it with the same tags in the same order. */
  allGather(tag: string, value: string): Promise<string[]>;
  barrier(tag: string): Promise<void>;
  /** Leaves the store; on rank 0, keeps serving until every rank has closed or the timeout passes. */
  close(): Promise<void>;
}

function checkOptions(o: RendezvousOptions): void {
  const bad = (msg: string) => {
    throw new XattnError('XATTN_E_RENDEZVOUS', `rendezvous: ${msg}`);
  };
  if (!Number.isInteger(o.worldSize) || o.worldSize < 1) bad(`worldSize must be a positive integer (got ${o.worldSize})`);
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize) bad(`rank ${o.rank} is outside 0..${o.worldSize - 1}`);
  const minPort = o.rank === 0 ? 0 : 1;
  if (!Number.isInteger(o.masterPort) || o.masterPort < minPort || o.masterPort > 65535) bad(`masterPort ${o.masterPort} is not a valid port`);
  if (!(o.timeoutMs > 0)) bad(`timeoutMs must be positive (got ${o.timeoutMs})`);
}

class Session implements Rendezvous {
  private readonly generations = new Map<string, number>();
  private closing?: Promise<void>;

  constructor(
    private readonly client: RendezvousClient,
    private readonly server: RendezvousServer | undefined,
    private readonly opts: RendezvousOptions & { jobName: string },
    readonly storePort: number,
  ) {}

  get rank(): number {
    return this.opts.rank;
  }
  get worldSize(): number {
    return this.opts.worldSize;
  }

  async set(key: string, value: string): Promise<void> {
    await this.client.request({ t: 'set', key: `kv/${key}`, value }, this.opts.timeoutMs);
  }

  async get(key: string): Promise<string> {
    try {
      const [value] = await this.client.request({ t: 'wait', keys: [`kv/${key}`], timeoutMs: this.opts.timeoutMs }, this.opts.timeoutMs);
      return value!;
    } catch (e) {
      throw this.explainTimeout(e, () => `rendezvous: key '${key}' was not set within ${seconds(this.opts.timeoutMs)}`);
    }
  }

  allGather(tag: string, value: string): Promise<string[]> {
    return this.gather('ag', `allGather '${tag}'`, tag, value);
  }

  async barrier(tag: string): Promise<void> {
    await this.gather('barrier', `barrier '${tag}'`, tag, '');
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // Each call with a tag gets its own generation, so a tag may be reused (in the same order on every rank).
  private async gather(kind: string, what: string, tag: string, value: string): Promise<string[]> {
    const generation = this.generations.get(`${kind}/${tag}`) ?? 0;
    this.generations.set(`${kind}/${tag}`, generation + 1);
    const prefix = `${kind}/${generation}/${tag}/`;
    const { rank, worldSize, timeoutMs } = this.opts;
    await this.client.request({ t: 'set', key: prefix + rank, value }, timeoutMs);
    const keys = Array.from({ length: worldSize }, (_, r) => prefix + r);
    try {
      return await this.client.request({ t: 'wait', keys, timeoutMs }, timeoutMs);
    } catch (e) {
      throw this.explainTimeout(e, (missing) => {
        const ranks = missing.map((k) => Number(k.slice(prefix.length)));
        return `rendezvous: ${rankList(ranks)} of ${worldSize} did not arrive at ${what} within ${seconds(timeoutMs)}`;
      });
    }
  }

  private explainTimeout(e: unknown, message: (missing: string[]) => string): unknown {
    if (e instanceof StoreRequestError && e.code === 'XATTN_E_RENDEZVOUS_TIMEOUT') {
      return new XattnError('XATTN_E_RENDEZVOUS_TIMEOUT', message(e.missing));
    }
    return e;
  }

  private async shutdown(): Promise<void> {
    await this.client.close();
    if (!this.server) return;
    const all = await this.server.whenAllClosed(this.opts.timeoutMs);
    if (!all) this.opts.logger?.warn(`rendezvous: stopping the store after ${seconds(this.opts.timeoutMs)} although some ranks never closed`);
    await this.server.stop();
  }
}

export async function joinRendezvous(options: RendezvousOptions): Promise<Rendezvous> {
  checkOptions(options);
  const opts = { ...options, jobName: options.jobName ?? 'xattn', token: options.token || undefined, timeoutMs: Math.ceil(options.timeoutMs) };
  const identity = { rank: opts.rank, worldSize: opts.worldSize, jobName: opts.jobName, token: opts.token, timeoutMs: opts.timeoutMs };
  if (opts.rank !== 0) {
    const client = await RendezvousClient.connect({ ...identity, host: opts.masterAddr, port: opts.masterPort });
    return new Session(client, undefined, opts, opts.masterPort);
  }
  const server = await RendezvousServer.start({ port: opts.masterPort, worldSize: opts.worldSize, jobName: opts.jobName, token: opts.token, timeoutMs: opts.timeoutMs, logger: opts.logger });
  try {
    // Rank 0 reaches its own store over loopback: its service name may not resolve before it is ready.
    const client = await RendezvousClient.connect({ ...identity, host: '127.0.0.1', port: server.port });
    return new Session(client, server, opts, server.port);
  } catch (e) {
    await server.stop();
    throw e;
  }
}
