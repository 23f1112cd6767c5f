// Builds the native TCP transport: listen on an ephemeral port, publish host:port through the
// rendezvous, then connect the full mesh (authenticated with the job token when there is one).
import { loadAddon } from '../native/addon.js';
import { advertisedHost, hostPort } from './advertise.js';
import type { Rendezvous } from './rendezvous.js';

/** The addon's TcpTransport (native/binding/transport.cc). */
export interface TcpTransport {
  readonly port: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly bytesSent: number;
  connect(addresses: string[]): Promise<void>;
  /** Test surface: one send and/or receive. Resolves with the received bytes when recvBytes is given. */
  exchange(opts: { send?: ArrayBufferView; to?: number; recvBytes?: number; from?: number }): Promise<Uint8Array | undefined>;
  allReduce(data: Float32Array): Promise<void>;
  barrier(): Promise<void>;
  close(): void;
}

export interface TcpTransportOptions {
  rank: number;
  worldSize: number;
  /** Bind address (all interfaces by default). */
  host?: string;
  token?: string;
  timeoutMs: number;
  /** Where to read XATTN_ADVERTISE_ADDR / XATTN_POD_HOSTNAME (process.env by default). */
  env?: NodeJS.ProcessEnv;
}

export function createTcpTransport(opts: Omit<TcpTransportOptions, 'env'>): TcpTransport {
  const { TcpTransport } = loadAddon();
  return new TcpTransport({ rank: opts.rank, worldSize: opts.worldSize, host: opts.host ?? '0.0.0.0', token: opts.token || undefined, timeoutMs: opts.timeoutMs });
}

export async function connectTcpTransport(rdv: Rendezvous, opts: TcpTransportOptions): Promise<TcpTransport> {
  const transport = createTcpTransport(opts);
  try {
    const me = hostPort(advertisedHost(opts.env ?? process.env), transport.port);
    const addresses = await rdv.allGather('tcp-transport', me);
    await transport.connect(addresses);
    return transport;
  } catch (e) {
    transport.close();
    throw e;
  }
}
