// A list+watch cache under a supervisor. client-node's ListWatch stops for good on any error but
// 410, so this loop owns the cycle instead: relist (diffing, so deletes missed while away are
// reported), watch from the list's resourceVersion with bookmarks and a server-side timeout, and
// on any failure wait with capped exponential backoff and go round again. A watchdog aborts a
// watch that has gone silent past its own timeout.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { KubeRest } from './rest.js';
import { isStatus } from './rest.js';
import { resourcePath, type ResourceType } from './resources.js';

export interface KubeMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: any };
  [k: string]: any;
}
type Handler<T> = (obj: T) => void;

export interface InformerOptions {
  kc: KubeConfig;
  rest: KubeRest;
  resource: ResourceType;
  namespace?: string;
  labelSelector?: string;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  watchTimeoutSeconds?: number;
  onError?: (err: unknown) => void;
  /** Called once per cycle after a successful list (supervisor health). */
  onListed?: () => void;
}

const cacheKey = (o: KubeMeta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class SupervisedInformer<T extends KubeMeta> {
  private readonly cache = new Map<string, T>();
  private readonly handlers = { add: [] as Handler<T>[], update: [] as Handler<T>[], delete: [] as Handler<T>[] };
  private rv = '';
  private stopped = true;
  private abort?: AbortController;
  private wake?: () => void;
  private loopDone?: Promise<void>;
  synced = false;
  /** Failed list or watch cycles since start (each followed by a restart). */
  restarts = 0;

  constructor(private readonly o: InformerOptions) {}

  on(verb: 'add' | 'update' | 'delete', cb: Handler<T>): void {
    this.handlers[verb].push(cb);
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.loopDone;
  }

  /** Forces a fresh list on the next cycle (used after long silences or on demand). */
  relistSoon(): void {
    this.rv = '';
    this.abort?.abort();
  }

  private emit(verb: 'add' | 'update' | 'delete', obj: T): void {
    for (const h of this.handlers[verb]) {
      try {
        h(obj);
      } catch (e) {
        this.o.onError?.(e);
      }
    }
  }

  private async loop(): Promise<void> {
    const initial = this.o.initialBackoffMs ?? 200;
    const max = this.o.maxBackoffMs ?? 30_000;
    let delay = initial;
    while (!this.stopped) {
      try {
        if (!this.rv) {
          await this.relist();
          delay = initial;
        }
        const expired = await this.watchOnce();
        if (expired) this.rv = '';
        else delay = initial;
      } catch (err) {
        if (this.stopped) break;
        if (isStatus(err, 410) || (err as any)?.statusCode === 410) {
          this.rv = '';
          continue;
        }
        this.restarts++;
        this.o.onError?.(err);
        await this.sleep(delay * (0.8 + 0.4 * Math.random()));
        delay = Math.min(max, delay * 2);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async relist(): Promise<void> {
    const path = resourcePath(this.o.resource, this.o.namespace);
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.o.rest.get(path, { query: { labelSelector: this.o.labelSelector, limit: 500, continue: cont } });
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont);
    const seen = new Set<string>();
    for (const obj of items) {
      const k = cacheKey(obj);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', obj);
    }
    for (const [k, old] of [...this.cache]) {
      if (seen.has(k)) continue;
      this.cache.delete(k);
      this.emit('delete', old);
    }
    this.rv = rv;
    this.synced = true;
    this.o.onListed?.();
  }

  /** One watch connection; resolves true when the server says our resourceVersion is too old. */
  private watchOnce(): Promise<boolean> {
    const timeout = this.o.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    const query: Record<string, string | number | boolean> = { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: timeout };
    if (this.o.labelSelector) query.labelSelector = this.o.labelSelector;
    return new Promise<boolean>((resolve, reject) => {
      let expired = false;
      let failure: Error | undefined;
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.abort?.abort(), (timeout + 30) * 1000);
        watchdog.unref?.();
      };
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        if (this.stopped || expired) resolve(expired);
        else if (err || failure) reject(err ?? failure);
        else resolve(false);
      };
      arm();
      new Watch(this.o.kc)
        .watch(
          resourcePath(this.o.resource, this.o.namespace),
          query,
          (type: string, obj: any) => {
            arm();
            if (type === 'ERROR') {
              // 410: our resourceVersion is gone, relist. Anything else (e.g. 504 "Too large
              // resource version" while the server's cache catches up) ends this watch with backoff.
              if (obj?.code === 410) expired = true;
              else failure = new Error(`watch error ${obj?.code ?? ''}: ${obj?.message ?? JSON.stringify(obj)}`);
              return;
            }
            if (obj?.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
            if (type === 'BOOKMARK') return;
            const k = cacheKey(obj);
            if (type === 'DELETED') {
              const old = this.cache.get(k);
              this.cache.delete(k);
              this.emit('delete', old ?? obj);
              return;
            }
            const had = this.cache.has(k);
            this.cache.set(k, obj);
            this.emit(had ? 'update' : 'add', obj);
          },
          finish,
        )
        .then((ctrl) => {
          this.abort = ctrl;
          if (this.stopped) ctrl.abort();
        }, finish);
    });
  }
}
