// The rendezvous store's TCP server, hosted in rank 0's process. Every connection must introduce
// itself (and prove it holds the job token, when one is set) before it may touch the store; anything
// malformed, oversized or out of turn drops that connection with a logged reason, never the server.
import net from 'node:net';
import { XattnError } from '../errors.js';
import { AUTH_FAILED, clientProof, newNonce, proofMatches, serverProof } from './auth.js';
import { encodeMessage, LineDecoder } from './framing.js';
import { seconds } from './format.js';
import { clientMessage, parseMessage, type Hello, type Request, type ServerMessage } from './protocol.js';
import { KeyValueStore, WaitTimeoutError } from './store.js';

export interface Logger {
  warn(msg: string): void;
}

export interface ServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Bind address; all interfaces when omitted. */
  host?: string;
  worldSize: number;
  jobName: string;
  token?: string;
  /** How long a connection may take to introduce itself. */
  timeoutMs: number;
  logger?: Logger;
}

interface Conn {
  socket: net.Socket;
  peer: string;
  nonce: string;
  rank?: number;
  saidBye: boolean;
  dropped: boolean;
  helloTimer?: NodeJS.Timeout;
}

export class RendezvousServer {
  private readonly store = new KeyValueStore();
  private readonly active = new Map<number, Conn>();
  private readonly closedRanks = new Set<number>();
  private readonly conns = new Set<Conn>();
  private readonly logger: Logger;
  private onAllClosed?: () => void;

  private constructor(
    private readonly server: net.Server,
    private readonly opts: ServerOptions,
  ) {
    this.logger = opts.logger ?? { warn: (m) => console.warn(m) };
    server.on('connection', (s) => this.accept(s));
    server.on('error', (e) => this.logger.warn(`rendezvous: server error: ${e.message}`));
  }

  static start(opts: ServerOptions): Promise<RendezvousServer> {
    const server = net.createServer();
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new XattnError('XATTN_E_RENDEZVOUS', `rank 0 could not host the rendezvous store on port ${opts.port}: ${e.code ?? e.message}`)),
      );
      server.listen({ port: opts.port, host: opts.host }, () => {
        server.removeAllListeners('error');
        resolve(new RendezvousServer(server, opts));
      });
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Resolves true once every rank has joined and then closed, or false after timeoutMs. */
  whenAllClosed(timeoutMs: number): Promise<boolean> {
    if (this.closedRanks.size === this.opts.worldSize) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.onAllClosed = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  async stop(): Promise<void> {
    this.store.close();
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const conn: Conn = { socket, peer: `${socket.remoteAddress}:${socket.remotePort}`, nonce: newNonce(), saidBye: false, dropped: false };
    this.conns.add(conn);
    const decoder = new LineDecoder();
    socket.setKeepAlive(true, 10_000);
    conn.helloTimer = setTimeout(() => this.drop(conn, `did not introduce itself within ${seconds(this.opts.timeoutMs)}`), this.opts.timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      const { messages, error } = decoder.push(chunk);
      for (const m of messages) {
        if (conn.dropped) return;
        this.onMessage(conn, m);
      }
      if (error && !conn.dropped) this.drop(conn, error);
    });
    socket.on('error', () => {}); // resets are reported through 'close'
    socket.on('close', () => this.onClose(conn));
    this.send(conn, { t: 'challenge', nonce: conn.nonce, auth: this.opts.token !== undefined });
  }

  private onMessage(conn: Conn, value: unknown): void {
    const parsed = parseMessage(clientMessage, value);
    if (!parsed.ok) return this.drop(conn, parsed.reason);
    const msg = parsed.msg;
    if (conn.rank === undefined) {
      if (msg.t !== 'hello') return this.drop(conn, `sent '${msg.t}' before introducing itself`);
      return this.onHello(conn, msg);
    }
    if (msg.t === 'hello') return this.drop(conn, 'introduced itself twice');
    this.onRequest(conn, msg);
  }

  private onHello(conn: Conn, h: Hello): void {
    const { token, worldSize, jobName } = this.opts;
    if (token !== undefined && !proofMatches(clientProof(token, conn.nonce, h), h.proof)) {
      return this.refuse(conn, 'XATTN_E_AUTH', AUTH_FAILED);
    }
    if (h.jobName !== jobName) {
      return this.refuse(conn, 'XATTN_E_RENDEZVOUS', `job name mismatch: the peer belongs to job '${h.jobName}', this store serves '${jobName}'`);
    }
    if (h.worldSize !== worldSize) {
      return this.refuse(conn, 'XATTN_E_RENDEZVOUS', `world size mismatch: rank ${h.rank} says worldSize ${h.worldSize}, this job has ${worldSize}`);
    }
    if (h.rank >= worldSize) {
      return this.refuse(conn, 'XATTN_E_RENDEZVOUS', `rank ${h.rank} is out of range for world size ${worldSize} (ranks are 0..${worldSize - 1})`);
    }
    if (this.active.has(h.rank)) {
      return this.refuse(conn, 'XATTN_E_RENDEZVOUS', `rank ${h.rank} has already joined (is a second worker running with RANK=${h.rank}?)`);
    }
    clearTimeout(conn.helloTimer);
    conn.rank = h.rank;
    this.active.set(h.rank, conn);
    this.closedRanks.delete(h.rank);
    this.send(conn, { t: 'welcome', proof: token === undefined ? undefined : serverProof(token, h.nonce, h) });
  }

  private onRequest(conn: Conn, req: Request): void {
    if (req.t === 'set') {
      this.store.set(req.key, req.value);
      return this.send(conn, { t: 'ok', id: req.id });
    }
    if (req.t === 'bye') {
      conn.saidBye = true;
      return this.send(conn, { t: 'ok', id: req.id });
    }
    this.store.wait(req.keys, req.timeoutMs).then(
      (values) => this.send(conn, { t: 'ok', id: req.id, values }),
      (e: Error) =>
        e instanceof WaitTimeoutError
          ? this.send(conn, { t: 'error', id: req.id, code: 'XATTN_E_RENDEZVOUS_TIMEOUT', message: 'timed out', missing: e.missing })
          : this.send(conn, { t: 'error', id: req.id, code: 'XATTN_E_RENDEZVOUS', message: e.message }),
    );
  }

  private onClose(conn: Conn): void {
    clearTimeout(conn.helloTimer);
    this.conns.delete(conn);
    if (conn.rank === undefined || this.active.get(conn.rank) !== conn) return;
    this.active.delete(conn.rank);
    this.closedRanks.add(conn.rank);
    if (!conn.saidBye) this.logger.warn(`rendezvous: rank ${conn.rank} disconnected without closing (did it crash?)`);
    if (this.closedRanks.size === this.opts.worldSize) this.onAllClosed?.();
  }

  private send(conn: Conn, msg: ServerMessage): void {
    if (!conn.dropped && conn.socket.writable) conn.socket.write(encodeMessage(msg));
  }

  private drop(conn: Conn, reason: string): void {
    const who = conn.rank === undefined ? conn.peer : `${conn.peer} (rank ${conn.rank})`;
    this.logger.warn(`rendezvous: dropped the connection from ${who}: ${reason}`);
    conn.dropped = true;
    conn.socket.destroy();
  }

  /** Tells the peer why, then closes; the peer gets a moment to read the reason. */
  private refuse(conn: Conn, code: string, message: string): void {
    this.logger.warn(`rendezvous: refused ${conn.peer}: ${message}`);
    conn.socket.end(encodeMessage({ t: 'refused', code, message } satisfies ServerMessage));
    conn.dropped = true;
    setTimeout(() => conn.socket.destroy(), 1000).unref();
  }
}
