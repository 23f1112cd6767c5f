// SHA-256 on a worker thread, so a checkpoint's data is hashed beside training instead of on the event
// loop that drives it: hashing a 4 GB state there in slices stretched the three steps after a save by
// about a second each (Llama-3.2-11B-Vision cross-attention, 2x H200).
import { Worker } from 'node:worker_threads';

// Runs as CommonJS (eval: true): bytes in, in order; null asks for the hex digest.
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
parentPort.on('message', (bytes) => {
  if (bytes === null) parentPort.postMessage(hash.digest('hex'));
  else hash.update(bytes);
});
`;

export class ThreadHash {
  private readonly worker = new Worker(SOURCE, { eval: true });
  private failure: Error | undefined;

  constructor() {
    this.worker.on('error', (e) => (this.failure ??= e));
  }

  /** Queues `bytes`. A view over a SharedArrayBuffer is read in place, so it must not change until
   * digest() resolves; any other is copied (just its range) and handed over. */
  update(bytes: Uint8Array): void {
    if (bytes.buffer instanceof SharedArrayBuffer) return this.worker.postMessage(bytes);
    const copy = new Uint8Array(bytes.byteLength); // not bytes.slice(): a Buffer's slice is a view of its pool
    copy.set(bytes);
    this.worker.postMessage(copy, [copy.buffer]);
  }

  /** The hex digest of everything queued; ends the thread. */
  async digest(): Promise<string> {
    try {
      return await new Promise<string>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        this.worker.once('message', resolve);
        this.worker.once('error', reject);
        this.worker.once('exit', (code) => reject(new Error(`the hashing thread exited (code ${code}) before its digest`)));
        this.worker.postMessage(null);
      });
    } finally {
      await this.close();
    }
  }

  /** Ends the thread (also after a failed write, which never asks for the digest). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
