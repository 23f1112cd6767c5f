// ThreadHash gives node:crypto's SHA-256 of the same bytes, whatever memory they sit in, and leaves the
// caller's buffers usable (a Buffer's slice shares Node's pool, which must never be handed away).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ThreadHash } from '../../../runtime/checkpoint/thread-hash.js';

describe('ThreadHash', () => {
  it('hashes shared, plain and pooled bytes in order, like createHash', async () => {
    const shared = new Uint8Array(new SharedArrayBuffer(3 << 20)).map((_, i) => (i * 7) & 255);
    const plain = new Float32Array(1000).map((_, i) => Math.sin(i));
    const pooled = Buffer.from('safetensors header {"a":1}'); // a view into Node's shared pool
    const parts = [pooled, new Uint8Array(shared.buffer, 5, 1 << 20), new Uint8Array(plain.buffer, 4, 400), shared];
    const h = new ThreadHash();
    parts.forEach((p) => h.update(p));
    const expected = createHash('sha256');
    parts.forEach((p) => expected.update(p));
    expect(await h.digest()).toBe(expected.digest('hex'));
    expect(pooled.toString()).toBe('safetensors header {"a":1}');
    expect(plain.byteLength).toBe(4000); // not detached
    expect(Buffer.from('another pooled buffer').toString()).toBe('another pooled buffer');
  });

  it('closes without a digest (a write that failed half way)', async () => {
    const h = new ThreadHash();
    h.update(new Uint8Array(10));
    await expect(h.close()).resolves.toBeUndefined();
  });
});
