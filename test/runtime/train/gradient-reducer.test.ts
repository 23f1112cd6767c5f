// GradientReducer's bookkeeping against a stand-in for the model ops: background sums are all waited
// for before the final collective, and where the transport cannot post, every gradient goes into it.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../../runtime/engine/engine.js';
import type { Nn } from '../../../runtime/model/nn.js';
import { GradientReducer } from '../../../runtime/train/gradient-reducer.js';

const tensor = (name: string) => ({ name }) as unknown as Tensor;

function standIn(canPost: boolean) {
  const calls: string[] = [];
  let next = 1;
  const nn = {
    allReducePost: async (ts: Tensor[]) => {
      calls.push(`post ${ts.map((t) => (t as unknown as { name: string }).name).join(',')}`);
      return canPost ? { posted: true, handle: next++, bytesSent: 100 } : { posted: false, handle: 0, bytesSent: 0 };
    },
    allReduceWait: async (h: number) => void calls.push(`wait ${h}`),
    allReduceSum: async (ts: Tensor[], extras: number[] = []) => {
      calls.push(`sum [${ts.map((t) => (t as unknown as { name: string }).name).join(',')}] extras ${extras.join(',')}`);
      return { extras: extras.map((x) => 2 * x), bytesSent: 8, seconds: 0 };
    },
  } as unknown as Nn;
  return { nn, calls };
}

describe('GradientReducer', () => {
  it('posts each layer, waits for every post before the final collective, and counts all bytes', async () => {
    const { nn, calls } = standIn(true);
    const r = new GradientReducer(nn);
    await r.add([tensor('l1.a'), tensor('l1.b')]);
    await r.add([tensor('l0.a')]);
    const res = await r.finish([3, 0]);
    expect(calls).toEqual(['post l1.a,l1.b', 'post l0.a', 'wait 1', 'wait 2', 'sum [] extras 3,0']);
    expect(res).toMatchObject({ extras: [6, 0], bytesSent: 208 });
  });

  it('sums every gradient in the final collective where the transport cannot post', async () => {
    const { nn, calls } = standIn(false);
    const r = new GradientReducer(nn);
    await r.add([tensor('l1.a')]);
    await r.add([tensor('l0.a'), tensor('l0.b')]);
    const res = await r.finish([1]);
    expect(calls.slice(2)).toEqual(['sum [l1.a,l0.a,l0.b] extras 1']);
    expect(res.bytesSent).toBe(8);
  });

  it('starts empty again after finish (one reducer per step is not required)', async () => {
    const { nn, calls } = standIn(true);
    const r = new GradientReducer(nn);
    await r.add([tensor('a')]);
    await r.finish([]);
    calls.length = 0;
    await r.finish([]);
    expect(calls).toEqual(['sum [] extras ']);
  });
});
