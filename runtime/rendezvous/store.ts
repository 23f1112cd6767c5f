// The rendezvous key-value store itself, without any networking: set values, wait for keys.

export class WaitTimeoutError extends Error {
  constructor(readonly missing: string[]) {
    super(`keys not set in time: ${missing.join(', ')}`);
  }
}

export class StoreClosedError extends Error {
  constructor() {
    super('the rendezvous store is shutting down');
  }
}

interface Waiter {
  keys: string[];
  resolve(values: string[]): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class KeyValueStore {
  private readonly values = new Map<string, string>();
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  set(key: string, value: string): void {
    this.values.set(key, value);
    for (const w of [...this.waiters]) this.settleIfReady(w);
  }

  /** Resolves with the values in key order once every key is set; rejects with WaitTimeoutError. */
  wait(keys: string[], timeoutMs: number): Promise<string[]> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        keys,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new WaitTimeoutError(keys.filter((k) => !this.values.has(k))));
        }, timeoutMs),
      };
      this.waiters.add(w);
      this.settleIfReady(w);
    });
  }

  /** Fails every pending wait; later waits fail at once. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new StoreClosedError());
    }
    this.waiters.clear();
  }

  private settleIfReady(w: Waiter): void {
    if (!w.keys.every((k) => this.values.has(k))) return;
    clearTimeout(w.timer);
    this.waiters.delete(w);
    w.resolve(w.keys.map((k) => this.values.get(k)!));
  }
}
