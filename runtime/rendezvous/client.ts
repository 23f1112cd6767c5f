// One rank's connection to the rendezvous store: dial with retries (the store may not be up yet),
// authenticate both ways, then send requests and match the answers by id.
import net from 'node:net';
import { XattnError } from '../errors.js';
import { AUTH_FAILED, clientProof, newNonce, proofMatches, serverProof, type Identity } from './auth.js';
import { encodeMessage, LineDecoder } from './framing.js';
import { seconds } from './format.js';
import { MAX_KEY_CHARS, parseMessage, serverMessage, type Request, type ServerMessage } from './protocol.js';

export interface ClientOptions extends Identity {
  host: string;
  port: number;
  token?: string;
  timeoutMs: number;
}

/** The store answered a request with an error (e.g. keys still missing at the timeout). */
export class StoreRequestError extends XattnError {
  constructor(code: string, message: string, readonly missing: string[] = []) {
    super(code, message);
  }
}

type RequestBody = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type Stage = 'challenge' | 'welcome' | 'joined' | 'closed';
interface Pending {
  resolve(values: string[]): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const MAX_BACKOFF_MS = 1000;
// Waits are timed by the store; the client's own timer only guards against a store that went silent.
const SILENT_STORE_GRACE_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function dialOnce(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setKeepAlive(true, 10_000);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export class RendezvousClient {
  private readonly decoder = new LineDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly nonce = newNonce();
  private readonly where: string;
  private stage: Stage = 'challenge';
  private nextId = 1;
  private joined!: { resolve(): void; reject(e: Error): void };

  private constructor(
    private readonly socket: net.Socket,
    private readonly opts: ClientOptions,
  ) {
    this.where = `${opts.host}:${opts.port}`;
  }

  /** Dials until the store answers or timeoutMs passes, then joins as opts.rank. */
  static async connect(opts: ClientOptions): Promise<RendezvousClient> {
    const deadline = Date.now() + opts.timeoutMs;
    let lastError = 'no attempt made';
    for (let backoff = 50; ; backoff = Math.min(2 * backoff, MAX_BACKOFF_MS)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new XattnError(
          'XATTN_E_RENDEZVOUS_TIMEOUT',
          `could not reach the rendezvous store at ${opts.host}:${opts.port} within ${seconds(opts.timeoutMs)} (last error: ${lastError})`,
        );
      }
      try {
        const client = new RendezvousClient(await dialOnce(opts.host, opts.port, left), opts);
        await client.join(deadline - Date.now());
        return client;
      } catch (e) {
        if (e instanceof XattnError) throw e; // the store answered: a refusal is final
        lastError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      }
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
    }
  }

  /** set/wait/bye; resolves with the values of a wait. */
  request(body: RequestBody, timeoutMs: number): Promise<string[]> {
    if (this.stage !== 'joined') return Promise.reject(this.lostError());
    const keys = body.t === 'wait' ? body.keys : body.t === 'set' ? [body.key] : [];
    const long = keys.find((k) => k.length > MAX_KEY_CHARS);
    if (long) return Promise.reject(new XattnError('XATTN_E_RENDEZVOUS', `rendezvous key is longer than ${MAX_KEY_CHARS} characters: '${long.slice(0, 40)}...'`));
    const id = this.nextId++;
    const line = encodeMessage({ ...body, id }); // throws before anything is sent if too large
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new XattnError('XATTN_E_RENDEZVOUS_TIMEOUT', `the rendezvous store at ${this.where} did not answer within ${seconds(timeoutMs)}`));
      }, timeoutMs + (body.t === 'wait' ? SILENT_STORE_GRACE_MS : 0));
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(line);
    });
  }

  /** Says goodbye (so the store knows this rank finished) and closes the connection. */
  async close(): Promise<void> {
    if (this.stage === 'joined') await this.request({ t: 'bye' }, Math.min(this.opts.timeoutMs, 5000)).catch(() => {});
    this.stage = 'closed';
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), 1000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }

  private join(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new XattnError('XATTN_E_RENDEZVOUS_TIMEOUT', `the rendezvous store at ${this.where} did not complete the handshake within ${seconds(this.opts.timeoutMs)}`)),
        timeoutMs,
      );
      this.joined = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
      this.socket.on('error', () => {}); // reported through 'close'
      this.socket.on('close', () => this.fail(this.lostError()));
    });
  }

  private onData(chunk: Buffer): void {
    const { messages, error } = this.decoder.push(chunk);
    for (const value of messages) {
      const parsed = parseMessage(serverMessage, value);
      if (!parsed.ok) return this.fail(new XattnError('XATTN_E_RENDEZVOUS', `the rendezvous store at ${this.where} sent an ${parsed.reason}`));
      this.onMessage(parsed.msg);
      if (this.stage === 'closed') return;
    }
    if (error) this.fail(new XattnError('XATTN_E_RENDEZVOUS', `the rendezvous store at ${this.where} sent a bad message: ${error}`));
  }

  private onMessage(msg: ServerMessage): void {
    const { token } = this.opts;
    if (msg.t === 'refused') {
      const hint = msg.code === 'XATTN_E_AUTH' && token === undefined ? ' (this rank has no job token: set XATTN_JOB_TOKEN)' : '';
      return this.fail(new XattnError(msg.code, `the rendezvous store at ${this.where} refused rank ${this.opts.rank}: ${msg.message}${hint}`));
    }
    if (this.stage === 'challenge' && msg.t === 'challenge') {
      if (token !== undefined && !msg.auth) {
        return this.fail(new XattnError('XATTN_E_AUTH', `${AUTH_FAILED} (the rendezvous store at ${this.where} uses no job token)`));
      }
      const id: Identity = { rank: this.opts.rank, worldSize: this.opts.worldSize, jobName: this.opts.jobName };
      const proof = token === undefined ? undefined : clientProof(token, msg.nonce, id);
      this.stage = 'welcome';
      this.socket.write(encodeMessage({ t: 'hello', ...id, nonce: this.nonce, proof }));
      return;
    }
    if (this.stage === 'welcome' && msg.t === 'welcome') {
      if (token !== undefined && !proofMatches(serverProof(token, this.nonce, this.opts), msg.proof)) {
        return this.fail(new XattnError('XATTN_E_AUTH', `${AUTH_FAILED} (the rendezvous store at ${this.where} could not prove it holds it)`));
      }
      this.stage = 'joined';
      return this.joined.resolve();
    }
    if (this.stage === 'joined' && (msg.t === 'ok' || msg.t === 'error')) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      return msg.t === 'ok' ? p.resolve(msg.values ?? []) : p.reject(new StoreRequestError(msg.code, msg.message, msg.missing));
    }
    this.fail(new XattnError('XATTN_E_RENDEZVOUS', `the rendezvous store at ${this.where} sent '${msg.t}' out of turn`));
  }

  private lostError(): XattnError {
    return this.stage === 'joined' || this.stage === 'closed'
      ? new XattnError('XATTN_E_RENDEZVOUS', `lost the connection to the rendezvous store at ${this.where} (rank 0 may have exited or crashed)`)
      : new XattnError('XATTN_E_RENDEZVOUS', `the rendezvous store at ${this.where} closed the connection during the handshake`);
  }

  /** Ends the session: rejects the join and every pending request with e. */
  private fail(e: Error): void {
    if (this.stage === 'closed') return;
    const joining = this.stage !== 'joined';
    this.stage = 'closed';
    this.socket.destroy();
    if (joining) this.joined.reject(e);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}
