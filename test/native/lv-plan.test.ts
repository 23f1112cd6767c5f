// LV-XAttn's pipelining decisions (native/core/lv_plan.cc), at the bench shapes on the three
// interconnects of 2x H200 where they were measured: row chunks only where a block's trip outlasts 0.7 of
// its compute, the owner's block whole only where both its hops are shorter than 0.1 ms at 0.6 of the probed link.
import { describe, expect, it } from 'vitest';
import { lvPlan, type LvPlanQuery } from '../../runtime/native/schedules.js';

const H200 = 132 * 3e12; // the CUDA backend's nominal rate on Hopper (3 TFLOP/s per SM)
const dims = { batch: 1, heads: 32, kvHeads: 8, headDim: 128, dtype: 'bfloat16' } as const;
const plan = (lq: number, lkv: number, linkGbps: number, pass: 'forward' | 'backward', extra: Partial<LvPlanQuery> = {}) =>
  lvPlan({ dims, lqTotal: lq, lkvTotal: lkv, world: 2, pass, linkGbps, flopsPerSecond: H200, ...extra });
const SHAPES = { '1024x64K': [1024, 65536], '256x128K': [256, 131072], '4096x32K': [4096, 32768] } as const;

describe('LV-XAttn plan at the bench shapes, 2 ranks', () => {
  // [shape, link GB/s, forward chunks, backward chunks, own block, partials (auto) forward/backward]
  const cases: [keyof typeof SHAPES, number, number, number, string, string][] = [
    ['1024x64K', 220, 1, 1, 'whole', 'float32/float32'], // hops of 60-80 us: the split would cost more than it hides
    ['256x128K', 220, 1, 1, 'whole', 'float32/float32'],
    ['4096x32K', 220, 1, 1, 'kv', 'float32/float32'],
    ['1024x64K', 23, 1, 1, 'kv', 'float16/float32'], // forward trip 0.55 ms vs 0.69 ms of compute (float16: 0.37, no chunks); backward 0.73 vs 1.7
    ['256x128K', 23, 1, 1, 'kv', 'float32/float16'], // 128 rows a block: chunks would be too short; the backward stacks (float16: its last hop is exposed)
    ['4096x32K', 23, 2, 1, 'kv', 'float16/float16'], // forward trip 2.2 ms vs 1.4; backward 2.9 vs 3.5 (float16: 2.2, one chunk)
    ['1024x64K', 2, 2, 2, 'kv', 'float16/float16'],
    ['256x128K', 2, 1, 1, 'kv', 'float16/float16'],
    ['4096x32K', 2, 2, 2, 'kv', 'float16/float16'],
  ];
  it.each(cases)('%s at %i GB/s: forward %i chunks, backward %i, own block %s, partials %s', (shape, link, fwd, bwd, own, partials) => {
    const [lq, lkv] = SHAPES[shape];
    const f = plan(lq, lkv, link, 'forward'), b = plan(lq, lkv, link, 'backward');
    expect([f.chunks, b.chunks]).toEqual([fwd, bwd]);
    expect(f.ownBlock).toBe(own);
    expect(`${f.partials}/${b.partials}`).toBe(partials);
  });
});

describe('LV-XAttn plan, general rules', () => {
  it('takes experiment overrides for both passes ("V") or for each ("F/B", either left empty)', () => {
    const env = process.env;
    try {
      env.XATTN_LV_FIRST_SHARE = '0.5/0.25';
      env.XATTN_LV_CHUNKS = '/3';
      // 4096x32K over host memory: the plan's own chunks are 2 forward, 1 backward (the table above)
      const f = plan(4096, 32768, 23, 'forward'), b = plan(4096, 32768, 23, 'backward');
      expect([f.chunks, b.chunks]).toEqual([2, 3]);
      expect([f.firstKvRows, b.firstKvRows]).toEqual([8192, 4096]); // of a 16K-row shard, on 128-row tiles
      env.XATTN_LV_FIRST_SHARE = '0.5';
      env.XATTN_LV_CHUNKS = '4';
      const f2 = plan(4096, 32768, 23, 'forward'), b2 = plan(4096, 32768, 23, 'backward');
      expect([f2.chunks, b2.chunks]).toEqual([4, 4]);
      expect([f2.firstKvRows, b2.firstKvRows]).toEqual([8192, 8192]);
      // a backward share of 0 leaves a stacked backward's first piece out (512x128K over host memory plans 49 tiles)
      env.XATTN_LV_FIRST_SHARE = '/0';
      delete env.XATTN_LV_CHUNKS;
      const none = plan(512, 131072, 23, 'backward', { queryKept: true, bwdKvRowsPerWave: (132 * 128) / 8 });
      expect([none.stackLast, none.firstKvRows]).toEqual([true, 0]);
    } finally {
      delete env.XATTN_LV_FIRST_SHARE;
      delete env.XATTN_LV_CHUNKS;
    }
  });

  it('splits the own block at the first hop share of the bytes, on a 128-row tile boundary', () => {
    // forward: Q out (8192 B a row), float32 O and LSE home (16384 + 128 B a row)
    const share = 8192 / (8192 + 16384 + 128);
    const p = plan(1024, 65536, 0, 'forward');
    expect(p.ownBlock).toBe('kv');
    expect(p.firstKvRows).toBe(Math.round((share * 32768) / 128) * 128);
    // backward: Q, dO, LSE and D out (2 * 8192 + 2 * 128 B), float32 dQ home (16384 B)
    const bshare = (2 * 8192 + 2 * 128) / (2 * 8192 + 2 * 128 + 16384);
    expect(plan(1024, 65536, 0, 'backward').firstKvRows).toBe(Math.round((bshare * 32768) / 128) * 128);
  });

  it('leaves Q out of the backward\'s first hop where the forward kept its blocks', () => {
    // dO, LSE and D out (8192 + 2 * 128 B a row), float32 dQ home (16384 B)
    const share = (8192 + 2 * 128) / (8192 + 2 * 128 + 16384);
    const p = plan(1024, 65536, 0, 'backward', { queryKept: true });
    expect(p.firstKvRows).toBe(Math.round((share * 32768) / 128) * 128);
    expect(p.firstKvRows).toBeLessThan(plan(1024, 65536, 0, 'backward').firstKvRows);
    // 4096x32K over host memory: the lighter trip (0.65 of the compute) no longer pays for chunks
    expect(plan(4096, 32768, 23, 'backward', { queryKept: true, partials: 'float32' }).chunks).toBe(1);
    // the forward has no Q of an earlier pass to keep
    expect(plan(1024, 65536, 23, 'forward', { queryKept: true })).toEqual(plan(1024, 65536, 23, 'forward'));
  });

  it('weighs float16 partials at their wire size: half of O or dQ, plus a scale per row', () => {
    // forward: Q out (8192 B a row), float16 O (8192 B) plus LSE and scale (2 * 128 B) home
    const share = 8192 / (8192 + 8192 + 2 * 128);
    const p = plan(1024, 65536, 0, 'forward', { partials: 'float16' });
    expect(p.firstKvRows).toBe(Math.round((share * 32768) / 128) * 128);
    // backward: Q, dO, LSE and D out, float16 dQ plus its scale (8192 + 128 B) home
    const bshare = (2 * 8192 + 2 * 128) / (2 * 8192 + 2 * 128 + 8192 + 128);
    expect(plan(1024, 65536, 0, 'backward', { partials: 'float16' }).firstKvRows).toBe(Math.round((bshare * 32768) / 128) * 128);
    // 1024x64K over host memory: the forward's trip (Q + half of O) no longer outlasts 0.6 of the compute
    expect(plan(1024, 65536, 23, 'forward', { partials: 'float16' }).chunks).toBe(1);
    // 4096x32K backward over host memory: trip/compute 0.66 with float16 dQ (one chunk), 0.87 with float32 (two)
    expect(plan(4096, 32768, 23, 'backward', { partials: 'float16' }).chunks).toBe(1);
    expect(plan(4096, 32768, 23, 'backward', { partials: 'float32' }).chunks).toBe(2);
    // 256x128K over host memory: 2.1 MB of hops, 87 us at the probe's speed but not beside the kernels
    expect(plan(256, 131072, 23, 'forward', { partials: 'float16' }).ownBlock).toBe('kv');
    expect(() => plan(1024, 65536, 23, 'forward', { partials: 'bfloat16' as never })).toThrow(/partials must be 'auto', 'float32' or 'float16', got 'bfloat16'/);
  });

  it('sends float16 partials for a pass whose float32 trip would take at least 0.6 of its compute, 16-bit only', () => {
    // 256x128K backward at 7 GB/s: Q, dO, LSE and D out plus float32 dQ home (4.2 MB) take 0.7 of its 0.87 ms
    // of compute
    expect(plan(256, 131072, 7, 'backward').partials).toBe('float16');
    // (the kept case, 0.52 alone, now stacks and so sends its exposed last hop as float16)
    expect(plan(256, 131072, 7, 'backward', { queryKept: true })).toMatchObject({ stackLast: true, partials: 'float16' });
    // the threshold: a link at which the 4096x32K forward's float32 trip (Q out; O and LSE home) takes 0.6 of its compute
    const tripBytes = 2048 * (8192 + 16384 + 128), computeSeconds = (4 * 32 * 128 * 2048 * 16384) / H200;
    const even = tripBytes / (0.6 * computeSeconds) / 1e9;
    expect(plan(4096, 32768, even * 0.999, 'forward').partials).toBe('float16');
    expect(plan(4096, 32768, even * 1.001, 'forward').partials).toBe('float32');
    // float32 attention keeps float32 partials (float16's 2^-11 would be coarser than its output)
    expect(plan(4096, 32768, 2, 'forward', { dims: { ...dims, dtype: 'float32' } }).partials).toBe('float32');
    expect(plan(4096, 32768, 2, 'forward', { dims: { ...dims, dtype: 'float16' } }).partials).toBe('float16');
    // an unknown link or rate decides nothing: float32
    expect(plan(4096, 32768, 0, 'forward').partials).toBe('float32');
    expect(plan(4096, 32768, 2, 'forward', { flopsPerSecond: 0 }).partials).toBe('float32');
    // an explicit choice stands, and the plan weighs what it chose
    expect(plan(4096, 32768, 2, 'forward', { partials: 'float32' }).partials).toBe('float32');
    expect(plan(4096, 32768, 220, 'forward', { partials: 'float16' }).partials).toBe('float16');
    expect(plan(4096, 32768, 23, 'forward').firstKvRows).toBe(plan(4096, 32768, 23, 'forward', { partials: 'float16' }).firstKvRows);
    expect(plan(4096, 32768, 23, 'forward').firstKvRows).not.toBe(plan(4096, 32768, 23, 'forward', { partials: 'float32' }).firstKvRows);
  });

  it("splits the backward's own block on a whole wave of its kernel", () => {
    // 4096x32K: 16384 visual rows a rank, 128-row tiles x 8 kv heads on 132 SMs: 2112 rows a wave, 7.76 waves
    const wave = (132 * 128) / 8;
    const waves = (rows: number) => Math.ceil(((rows / 128) * 8) / 132);
    for (const partials of ['float32', 'float16'] as const) {
      const p = plan(4096, 32768, 23, 'backward', { partials, bwdKvRowsPerWave: wave });
      expect(p.firstKvRows % 128, partials).toBe(0);
      expect(waves(p.firstKvRows) + waves(16384 - p.firstKvRows), `${partials}: waves of both pieces`).toBe(waves(16384));
    }
    // the float16 byte share (2/3) would spill: 85 tiles take 6 waves and the other 43 tiles 3
    expect(plan(4096, 32768, 23, 'backward', { partials: 'float16' }).firstKvRows).toBe(85 * 128);
    expect(plan(4096, 32768, 23, 'backward', { partials: 'float16', bwdKvRowsPerWave: wave }).firstKvRows).toBe(82 * 128); // 5 waves
    // the forward's grid fills the GPU by splitting the keys: no wave to snap to
    expect(plan(4096, 32768, 23, 'forward', { bwdKvRowsPerWave: wave })).toEqual(plan(4096, 32768, 23, 'forward'));
  });

  it('splits along the batch when there are several', () => {
    const p = plan(1024, 65536, 23, 'forward', { dims: { ...dims, batch: 4 }, partials: 'float32' });
    expect(p.ownBlock).toBe('batch');
    expect(p.firstBatches).toBe(1); // a third of 4, rounded
    expect(p.firstKvRows).toBe(32768);
  });

  it('never chunks on an unknown link, nor where compute dwarfs the trip (the CPU engine)', () => {
    expect(plan(4096, 32768, 0, 'forward').chunks).toBe(1);
    expect(plan(4096, 32768, 2, 'forward', { flopsPerSecond: 5e10 }).chunks).toBe(1);
  });

  it('gives every rank of ragged shards the same chunks', () => {
    const ranks = [0, 1, 2].map((rank) => plan(4097, 32771, 23, 'backward', { world: 3, rank }).chunks);
    expect(new Set(ranks).size).toBe(1);
  });

  it('counts the mask in the first hop', () => {
    // one fp32 head of 8: Q 32 B a row, mask 8 B, O 32 B and LSE 4 B home, where the mask moves the split
    const small = { dims: { batch: 1, heads: 1, kvHeads: 1, headDim: 8, dtype: 'float32' as const } };
    const rows = (share: number) => Math.round((share * 32768) / 128) * 128;
    expect(plan(1024, 65536, 0, 'forward', small).firstKvRows).toBe(rows(32 / (32 + 36)));
    expect(plan(1024, 65536, 0, 'forward', { ...small, masked: true }).firstKvRows).toBe(rows(40 / (40 + 36)));
  });

  it('rejects bad queries with a clear error', () => {
    expect(() => plan(1024, 65536, 23, 'sideways' as 'forward')).toThrow(/pass must be 'forward' or 'backward'/);
    expect(() => plan(1024, 65536, 23, 'forward', { world: 2, rank: 2 })).toThrow(/rank < world/);
    expect(() => plan(0, 65536, 23, 'forward')).toThrow(/lqTotal and lkvTotal must be >= 1/);
  });
});

// The backward stacks the own rows onto the last visiting block where the float32 dK/dV it then writes once
// (instead of writing and reading back) outweigh the stacking copies and the last hop it leaves exposed.
describe('LV-XAttn plan, stacked backward', () => {
  const wave = (132 * 128) / 8; // visual rows a wave of the Hopper backward at 8 kv heads
  const bwd = (lq: number, lkv: number, link: number, extra: Partial<LvPlanQuery> = {}) =>
    plan(lq, lkv, link, 'backward', { queryKept: true, bwdKvRowsPerWave: wave, ...extra });

  it('stacks where dK/dV dwarf the text rows and the last hop is short', () => {
    // 256x128K over NVLink: 537 MB of float32 dK/dV (0.35 ms saved) against a 2.1 MB hop (16 us);
    // the first hop (1.1 MB, 8 us) is under half a wave of the own block: it all runs stacked
    const nv = bwd(256, 131072, 220);
    expect(nv.stackLast).toBe(true);
    expect([nv.ownBlock, nv.firstKvRows]).toEqual(['kv', 0]);
    // over host memory the exposed last hop goes as float16 (float32: 2.1 MB, 0.15 ms), where unstacked it
    // went as float32 (trip 0.16 of the compute); 128 own rows get no first piece (under 256 rows)
    const host = bwd(256, 131072, 23);
    expect([host.stackLast, host.partials, host.firstKvRows]).toEqual([true, 'float16', 0]);
    expect(bwd(256, 131072, 23, { partials: 'float32' })).toMatchObject({ stackLast: true, partials: 'float32' });
    expect(nv.partials).toBe('float32'); // NVLink: the float32 hop takes 16 us
    // 256 own rows: the first hop (2.2 MB at 0.6 x 23 GB/s: 0.16 ms, 0.09 of the own block's 1.7 ms) gets its
    // own piece: 3 waves of 2112 rows, on a 128-row tile
    const host512 = bwd(512, 131072, 23);
    expect([host512.stackLast, host512.firstKvRows]).toEqual([true, 49 * 128]);
    // 1024x64K: 268 MB of dK/dV, 34 MB of copies (0.16 ms saved) against an 8.4 MB hop: 64 us over NVLink,
    // 0.61 ms over host memory
    expect(bwd(1024, 65536, 220).stackLast).toBe(true);
    expect(bwd(1024, 65536, 23)).toMatchObject({ stackLast: false, partials: 'float32' }); // float16: still 0.3 ms
  });

  it('keeps the two pieces where stacking would not pay', () => {
    // 4096x32K: the copies (134 MB) match the dK/dV (134 MB)
    for (const link of [220, 23, 2]) expect(bwd(4096, 32768, link).stackLast, `${link} GB/s`).toBe(false);
    // sockets: the float16 dQ home (1.1 MB at 1.2 GB/s: 0.9 ms) outlasts the 0.35 ms saved
    const sockets = bwd(256, 131072, 2);
    expect([sockets.stackLast, sockets.partials]).toEqual([false, 'float16']);
    expect(sockets.ownBlock).toBe('kv');
    // an unknown link: the last hop's length is unknown, so it stays hidden
    expect(bwd(256, 131072, 0).stackLast).toBe(false);
    // the forward never stacks (its K/V are read, nothing written back)
    expect(plan(256, 131072, 220, 'forward').stackLast).toBe(false);
  });
});

describe('LV-XAttn plan, gathered blocks', () => {
  const at = (world: number, lq: number, lkv: number, link: number, pass: 'forward' | 'backward', extra: Partial<LvPlanQuery> = {}) =>
    plan(lq, lkv, link, pass, { world, queryKept: pass === 'backward', ...extra });

  it('gathers from 3 ranks on, where the blocks travel whole', () => {
    for (const pass of ['forward', 'backward'] as const) {
      // P = 4 over NVLink, the scaling shapes: 64 and 256 text rows a rank
      expect(at(4, 256, 524288, 90, pass), pass).toMatchObject({ gathered: true, chunks: 1, partials: 'float32' });
      expect(at(4, 1024, 262144, 90, pass).gathered, pass).toBe(true);
      expect(at(3, 1024, 65536, 220, pass).gathered, pass).toBe(true);
      expect(at(8, 1024, 65536, 220, pass).gathered, pass).toBe(true);
      // two ranks send the same either way: the ring keeps its pieces and its stacking choice
      expect(at(2, 256, 131072, 220, pass).gathered, pass).toBe(false);
      // float16 partials travel gathered too; row chunks (a block's trip longer than its compute) stay on the ring
      expect(at(4, 256, 524288, 90, pass, { partials: 'float16' }), pass).toMatchObject({ gathered: true, partials: 'float16' });
      const sockets = at(4, 16384, 131072, 2, pass);
      expect([sockets.gathered, sockets.chunks], pass).toEqual([false, 2]);
    }
    // the backward runs the own rows stacked into the one launch of the visiting blocks
    expect(at(4, 256, 524288, 90, 'backward').stackLast).toBe(true);
    expect(at(4, 256, 524288, 90, 'forward').stackLast).toBe(false);
  });

  it("stacks the backward's own rows onto the visiting blocks only where that pays, as around the ring", () => {
    // dK/dV of 128K visual rows a rank (1 GiB) against 3 MiB of dQ coming home over NVLink: stacked
    expect(at(4, 256, 524288, 90, 'backward')).toMatchObject({ gathered: true, stackLast: true });
    // 256 text rows a block over host memory: 3 blocks' dQ (6 MiB as float16, 0.5 ms) outlast the 0.3 ms the
    // dK/dV write saves: the own block in two pieces around the visiting launch instead
    expect(at(4, 1024, 262144, 20, 'backward')).toMatchObject({ gathered: true, stackLast: false, ownBlock: 'kv' });
    // under 256 own rows no first piece, even where the first hop would want one: 64 rows a rank (1.6 MB over
    // host memory, 0.13 ms) and 128 (P = 2, 256x128K above); 256 rows a rank keep theirs
    const wave = (132 * 128) / 8;
    const few = at(4, 256, 524288, 20, 'backward', { bwdKvRowsPerWave: wave });
    expect([few.gathered, few.stackLast, few.ownBlock, few.firstKvRows]).toEqual([true, true, 'kv', 0]);
    const p2 = at(2, 256, 131072, 20, 'backward', { bwdKvRowsPerWave: wave });
    expect([p2.stackLast, p2.firstKvRows]).toEqual([true, 0]);
    const more = at(2, 512, 131072, 20, 'backward', { bwdKvRowsPerWave: wave });
    expect(more.stackLast).toBe(true);
    expect(more.firstKvRows).toBeGreaterThan(0);
    // forced at P = 2 it decides as the ring does
    for (const link of [23, 220]) {
      const gathered = at(2, 1024, 65536, link, 'backward', { gather: true }), ring = at(2, 1024, 65536, link, 'backward');
      expect([gathered.gathered, gathered.stackLast, gathered.partials], `${link} GB/s`).toEqual([true, ring.stackLast, ring.partials]);
    }
  });

  it('leaves chunked blocks on the ring', () => {
    const env = process.env;
    try {
      env.XATTN_LV_CHUNKS = '2';
      expect(at(4, 4096, 131072, 220, 'forward')).toMatchObject({ chunks: 2, gathered: false });
      expect(at(4, 4096, 131072, 220, 'backward')).toMatchObject({ chunks: 2, gathered: false });
    } finally {
      delete env.XATTN_LV_CHUNKS;
    }
  });

  it('gathers or not as forced, where it can', () => {
    expect(at(2, 256, 131072, 220, 'backward', { gather: true })).toMatchObject({ gathered: true, stackLast: true });
    expect(at(4, 256, 524288, 90, 'forward', { gather: false }).gathered).toBe(false);
    expect(at(4, 256, 524288, 90, 'backward', { gather: true, partials: 'float16' }).gathered).toBe(true);
    const env = process.env;
    try {
      env.XATTN_LV_GATHER = '0';
      expect(at(4, 256, 524288, 90, 'forward').gathered).toBe(false);
      expect(at(4, 256, 524288, 90, 'forward', { gather: true }).gathered).toBe(true); // the query's force wins
    } finally {
      delete env.XATTN_LV_GATHER;
    }
  });

  it("sends a stacked backward's inputs from every rank of ragged shards as the others expect them", () => {
    // 511 text rows over 2 ranks: 256 own rows get a first piece over host memory, 255 none; the inputs must
    // still travel alike (apart: the largest shard's piece hides their hop), or the ranks' messages disagree
    const wave = (132 * 128) / 8;
    for (const link of [23, 50, 220]) {
      const ranks = [0, 1].map((rank) => at(2, 511, 131072, link, 'backward', { rank, bwdKvRowsPerWave: wave, queryKept: true }));
      expect(ranks.map((p) => p.inputsTogether), `${link} GB/s`).toEqual([ranks[0]!.inputsTogether, ranks[0]!.inputsTogether]);
      if (link === 23) expect(ranks.map((p) => p.firstKvRows > 0)).toEqual([true, false]); // the pieces do differ
    }
    // and where no rank has a piece they travel together
    expect(at(2, 256, 131072, 23, 'backward', { bwdKvRowsPerWave: wave, queryKept: true }).inputsTogether).toBe(true);
  });

  it('gives every rank of ragged shards the same choice, and the same partials', () => {
    for (const pass of ['forward', 'backward'] as const)
      for (const gather of [true, false]) {
        const ranks = [0, 1, 2].map((rank) => at(3, 4097, 32771, 23, pass, { rank, gather }));
        expect(new Set(ranks.map((p) => `${p.gathered} ${p.partials}`)).size, `${pass}, gather ${gather}`).toBe(1);
      }
  });

  it('sends the gathered backward\'s dQ home as float16 where float32 would keep its trip over 0.1 ms', () => {
    // P = 4, 64-row blocks: three 1 MiB float32 dQ blocks come home, 0.23 ms at 0.6 x 23 GB/s; over NVLink 24 us
    expect(at(4, 256, 524288, 23, 'backward').partials).toBe('float16');
    expect(at(4, 256, 524288, 220, 'backward').partials).toBe('float32');
    expect(at(4, 256, 524288, 23, 'backward', { partials: 'float32' }).partials).toBe('float32');
  });

  it('sizes the backward\'s first piece to the blocks coming from every other rank', () => {
    // over host memory (23 GB/s) 256-row blocks from 3 ranks take 3x one block's hop: a longer first piece
    const wave = (132 * 128) / 8;
    const gathered = at(4, 1024, 524288, 23, 'backward', { bwdKvRowsPerWave: wave });
    const ring = at(4, 1024, 524288, 23, 'backward', { bwdKvRowsPerWave: wave, gather: false });
    expect(gathered.gathered).toBe(true);
    expect(gathered.firstKvRows).toBeGreaterThan(0);
    expect(gathered.firstKvRows).toBeGreaterThan(ring.stackLast ? ring.firstKvRows : 0);
  });
});
