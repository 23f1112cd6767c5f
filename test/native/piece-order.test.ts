// The order copy-engine batches queue their pieces in (native/core/piece_order.cc), checked by playing
// it out: ranks whose hosts queue pieces into finite per-peer streams, and "GPUs" that run a stream's
// head once its condition holds (a send needs the receiver to have freed its slot, a receive the data).
// The order must finish every pattern the schedules post; queuing all sends first must not (the hang
// the GPU run found), which shows the model can tell the two apart.
import { describe, expect, it } from 'vitest';
import { pieceOrder, type PieceJob } from '../../runtime/native/schedules.js';

interface Transfer { send: boolean; peer: number; pieces: number }
type Order = (jobs: PieceJob[], slots: number) => [number, number][];
interface Op { send: boolean; peer: number; n: number }

/** Plays `batches` (each rank's transfers per batch, in post order) and says whether every piece ran. */
function playOut(world: number, batches: ((rank: number) => Transfer[])[], slots: number, queueDepth: number, order: Order): boolean {
  const key = (a: number, b: number) => a * world + b;
  const arrived = new Map<number, number>(), credit = new Map<number, number>(); // [at rank, from peer]
  const hosts = Array.from({ length: world }, (_, r) => {
    const sent = new Map<number, number>(), got = new Map<number, number>();
    const ops: Op[] = [];
    for (const batch of batches) {
      const jobs = batch(r);
      for (const [j] of order(jobs, slots)) {
        const { send, peer } = jobs[j]!;
        const count = send ? sent : got;
        count.set(peer, (count.get(peer) ?? 0) + 1);
        ops.push({ send, peer, n: count.get(peer)! });
      }
    }
    return { ops, next: 0 };
  });
  const streams = new Map<string, Op[]>(); // `${rank}:${send|recv}:${peer}`
  const stream = (r: number, op: Op) => {
    const id = `${r}:${op.send ? 'send' : 'recv'}:${op.peer}`;
    if (!streams.has(id)) streams.set(id, []);
    return streams.get(id)!;
  };
  for (;;) {
    let moved = false;
    hosts.forEach((h, r) => {
      while (h.next < h.ops.length && stream(r, h.ops[h.next]!).length < queueDepth) {
        stream(r, h.ops[h.next]!).push(h.ops[h.next]!);
        h.next++;
        moved = true;
      }
    });
    for (const [id, q] of streams) {
      const r = Number(id.split(':')[0]);
      while (q.length) {
        const op = q[0]!;
        if (op.send) {
          if (op.n > slots && (credit.get(key(r, op.peer)) ?? 0) < op.n - slots) break;
          arrived.set(key(op.peer, r), op.n);
        } else {
          if ((arrived.get(key(r, op.peer)) ?? 0) < op.n) break;
          credit.set(key(op.peer, r), op.n);
        }
        q.shift();
        moved = true;
      }
    }
    const done = hosts.every((h) => h.next === h.ops.length) && [...streams.values()].every((q) => q.length === 0);
    if (done) return true;
    if (!moved) return false;
  }
}

const ours: Order = (jobs, slots) => pieceOrder(jobs, slots);
const sendsFirst: Order = (jobs) =>
  [...jobs.keys()].sort((a, b) => Number(jobs[b]!.send) - Number(jobs[a]!.send)).flatMap((j) => Array.from({ length: jobs[j]!.pieces }, (_, p) => [j, p] as [number, number]));

/** A ring step: send `pieces` to the next rank, receive as many from the previous one. */
const ringStep = (world: number, pieces: number) => (r: number): Transfer[] => [
  { send: true, peer: (r + 1) % world, pieces },
  { send: false, peer: (r + world - 1) % world, pieces },
];
/** Ring Attention's step: K and V of different sizes in one batch. */
const kvStep = (world: number, k: number, v: number) => (r: number): Transfer[] => [
  { send: true, peer: (r + 1) % world, pieces: k },
  { send: false, peer: (r + world - 1) % world, pieces: k },
  { send: true, peer: (r + 1) % world, pieces: v },
  { send: false, peer: (r + world - 1) % world, pieces: v },
];
/** A two-way batch with both neighbours (the transport's warm-up and the link probe). */
const bothWays = (world: number, pieces: number) => (r: number): Transfer[] => [
  { send: true, peer: (r + 1) % world, pieces },
  { send: false, peer: (r + world - 1) % world, pieces },
  { send: true, peer: (r + world - 1) % world, pieces },
  { send: false, peer: (r + 1) % world, pieces },
];
const toJobs = (t: Transfer[]): PieceJob[] => t.map(({ send, peer, pieces }) => ({ send, peer, pieces }));

describe('copy-engine piece order', () => {
  it('queues every piece of every job once and in order; a receive waits for nothing queued after it', () => {
    const jobs = toJobs(kvStep(3, 7, 4)(1));
    for (const slots of [2, 3, 4]) {
      const order = pieceOrder(jobs, slots);
      expect(order.length).toBe(22);
      jobs.forEach((_, j) => expect(order.filter(([x]) => x === j).map(([, p]) => p)).toEqual([...Array(jobs[j]!.pieces).keys()]));
      // K and V take turns on each stream, so the m-th receive and the m-th send carry the same piece, and
      // the m-th receive comes before the (m + slots)-th send, the first that waits for it on the peer.
      const nth = (send: boolean) => order.filter(([j]) => jobs[j]!.send === send).map(([j, p]) => [jobs[j]!.pieces === 7 ? 'K' : 'V', p].join(''));
      expect(nth(false)).toEqual(nth(true));
      const at = (send: boolean, m: number) => order.findIndex((_, i) => order.slice(0, i + 1).filter(([j]) => jobs[j]!.send === send).length === m + 1);
      for (let m = 0; m + slots < 11; m++) expect(at(false, m)).toBeLessThan(at(true, m + slots));
    }
  });

  it.each([
    ['ring step, 2 ranks', 2, [ringStep(2, 9)]],
    ['ring step, 4 ranks', 4, [ringStep(4, 9)]],
    ['Ring K/V step of unequal sizes, 3 ranks', 3, [kvStep(3, 7, 4)]],
    ['both neighbours at once, 4 ranks', 4, [bothWays(4, 6)]],
    ['several posts in a row, 2 ranks', 2, [ringStep(2, 5), kvStep(2, 3, 8), bothWays(2, 1), ringStep(2, 11)]],
  ] as const)('finishes a %s at any slot count and queue depth', (_, world, batches) => {
    for (const slots of [2, 3, 4])
      for (const depth of [1, 2, 3, 8]) expect(playOut(world, [...batches], slots, depth, ours), `slots ${slots}, queue ${depth}`).toBe(true);
  });

  it('the model catches the hang: queuing all sends first stalls once sends outrun the queue', () => {
    expect(playOut(2, [ringStep(2, 9)], 2, 2, sendsFirst)).toBe(false);
    expect(playOut(2, [ringStep(2, 3)], 2, 2, sendsFirst)).toBe(true); // few pieces fit in the queue
  });

  it('rejects fewer than two slots', () => {
    expect(() => pieceOrder([{ send: true, peer: 1, pieces: 1 }], 1)).toThrow(/at least 2 slots/);
  });
});
