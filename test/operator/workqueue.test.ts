import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../operator/controller/workqueue.js';

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key to two workers at once, and re-queues it after done if it changed meanwhile', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a'); // changed while being worked on
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(key!);
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('does not re-queue a key that did not change', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.done((await q.get())!);
    expect(q.length).toBe(0);
  });

  it('backs off exponentially per key until forgotten', () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 100 });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([5, 10, 20]);
    expect(q.addRateLimited('b')).toBe(5);
    for (let i = 0; i < 10; i++) q.addRateLimited('a');
    expect(q.addRateLimited('a')).toBe(100);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(5);
    q.shutDown();
  });

  it('delivers delayed adds, an earlier pending delay winning over a later one', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 600_000);
    q.addAfter('a', 5); // replaces the far-off delay: get() would otherwise block the test
    q.addAfter('b', 5);
    q.addAfter('b', 600_000); // ignored: b is already due sooner
    expect([await q.get(), await q.get()].sort()).toEqual(['a', 'b']);
    q.shutDown();
  });

  it('wakes blocked workers with undefined on shutdown and ignores later adds', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('a');
    expect(await q.get()).toBeUndefined();
  });

  it('reports adds, depth and in-flight keys', async () => {
    const seen: string[] = [];
    const q = new WorkQueue({ hooks: { onAdd: (k) => seen.push(`add:${k}`), onDepth: (d) => seen.push(`depth:${d}`), onDone: (k) => seen.push(`done:${k}`) } });
    q.add('a');
    q.add('a');
    const k = (await q.get())!;
    expect([...q.inFlight().keys()]).toEqual(['a']);
    q.done(k);
    expect(seen).toEqual(['add:a', 'depth:1', 'depth:0', 'done:a']);
  });
});
