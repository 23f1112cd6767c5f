import { describe, expect, it } from 'vitest';
import { Expectations } from '../../operator/controller/expectations.js';

describe('Expectations', () => {
  it('is satisfied only once every expected create and delete has been observed', () => {
    const e = new Expectations();
    expect(e.satisfied('ns/a')).toBe(true);
    e.expectCreations('ns/a', ['p0', 'p1']);
    e.expectDeletions('ns/a', ['old']);
    expect(e.satisfied('ns/a')).toBe(false);
    e.creationObserved('ns/a', 'p0');
    e.creationObserved('ns/a', 'p1');
    expect(e.satisfied('ns/a')).toBe(false);
    e.deletionObserved('ns/a', 'old');
    expect(e.satisfied('ns/a')).toBe(true);
    expect(e.satisfied('ns/b')).toBe(true);
  });

  it('ignores observations of pods nobody expected', () => {
    const e = new Expectations();
    e.expectCreations('k', ['p0']);
    e.creationObserved('k', 'other');
    expect(e.pendingCount('k')).toBe(1);
  });

  it('gives up after the TTL so a lost watch event cannot block a job forever', () => {
    let t = 0;
    const e = new Expectations(1000, () => t);
    e.expectCreations('k', ['p0']);
    t = 999;
    expect(e.satisfied('k')).toBe(false);
    t = 1000;
    expect(e.satisfied('k')).toBe(true);
    expect(e.pendingCount('k')).toBe(0);
  });

  it('forgets a deleted job', () => {
    const e = new Expectations();
    e.expectDeletions('k', ['p0']);
    e.forget('k');
    expect(e.satisfied('k')).toBe(true);
  });
});
