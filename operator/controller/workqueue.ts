// A work queue like client-go's: a key is queued at most once, never handed to two workers at
// once, re-queued after its worker finishes if it changed meanwhile, and retried with per-key
// exponential backoff.

export interface QueueHooks {
  /** Called on add (not on a deduplicated add), get, done and retry; feeds the workqueue_* metrics. */
  onAdd?(key: string): void;
  onGet?(key: string, waitedMs: number): void;
  onDone?(key: string, workedMs: number): void;
  onRetry?(key: string): void;
  onDepth?(depth: number): void;
}

export interface QueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
  hooks?: QueueHooks;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Map<string, number>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;
  private readonly hooks: QueueHooks;

  constructor(opts: QueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.hooks = opts.hooks ?? {};
  }

  get length(): number {
    return this.queue.length;
  }

  /** Keys being worked on right now, with the time each started. */
  inFlight(): ReadonlyMap<string, number> {
    return this.processing;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, this.now());
    this.hooks.onAdd?.(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds the key after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref?.();
    this.timers.set(key, { at, timer });
  }

  /** Retries a failed key: 5 ms, 10 ms, 20 ms, ... up to maxDelayMs. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n, 40));
    this.hooks.onRetry?.(key);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Next key, waiting if none is ready; undefined once shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    const started = this.processing.get(key);
    this.processing.delete(key);
    if (started !== undefined) this.hooks.onDone?.(key, this.now() - started);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
  }

  /** Stops handing out keys; workers blocked in get() receive undefined. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(this.take(key));
    else {
      this.queue.push(key);
      this.hooks.onDepth?.(this.queue.length);
    }
  }

  private take(key: string): string {
    this.dirty.delete(key);
    this.processing.set(key, this.now());
    this.hooks.onGet?.(key, this.now() - (this.addedAt.get(key) ?? this.now()));
    this.addedAt.delete(key);
    this.hooks.onDepth?.(this.queue.length);
    return key;
  }
}
