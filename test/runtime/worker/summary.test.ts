// The end-of-run summary: slowest rank sets the step, throughput follows from the job's shape, and the
// probed link shows only where ranks exchanged data.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readXAttnJob } from '../../../crds/validate.js';
import { formatSummary, summarize } from '../../../runtime/worker/summary.js';

const job = readXAttnJob(fileURLToPath(new URL('../../../examples/quickstart.yaml', import.meta.url)));
const rank = (r: number, stepSeconds: number) => ({ rank: r, timedSteps: 10, meanStepSeconds: stepSeconds, bytesSentPerStep: 1000 * (r + 1), commWaitSecondsPerStep: 0.01 });

describe('run summary', () => {
  it('takes the slowest rank as the step time and means the per-rank counters', () => {
    const s = summarize(job, 'cpu', [rank(0, 0.1), rank(1, 0.2)], { linkGbps: 2.345 });
    const w = job.spec.workload;
    expect(s.stepSeconds).toBe(0.2);
    expect(s.visualTokensPerSecond).toBeCloseTo((w.batch * w.visualTokens) / 0.2, 6);
    expect(s.bytesSentPerStepPerWorker).toBe(1500);
    expect(s.commWaitFraction).toBeCloseTo(0.05, 12);
    expect(formatSummary(s)).toMatch(/link between ranks\s+2\.35 GB\/s \(probed ring exchange\)/);
  });

  it('shows the slowest rank\'s median step beside the mean, where every rank reported one', () => {
    const withMedian = (r: number, mean: number, med: number) => ({ ...rank(r, mean), medianStepSeconds: med });
    const s = summarize(job, 'cpu', [withMedian(0, 0.1, 0.05), withMedian(1, 0.2, 0.06)]);
    expect(s.medianStepSeconds).toBe(0.06);
    expect(formatSummary(s)).toMatch(/step time\s+200\.00 ms; median 60\.00 ms$/m);
    const partial = summarize(job, 'cpu', [withMedian(0, 0.1, 0.05), rank(1, 0.2)]);
    expect(partial.medianStepSeconds).toBeUndefined();
    expect(formatSummary(partial)).toMatch(/step time\s+200\.00 ms$/m);
  });

  it('names how the transfers travel beside the link', () => {
    const s = summarize(job, 'cuda', [rank(0, 0.1), rank(1, 0.1)], { linkGbps: 240, linkPath: 'nccl, copy engines to 1 of 1 peers' });
    expect(formatSummary(s)).toMatch(/link between ranks\s+240\.0 GB\/s \(probed ring exchange; nccl, copy engines to 1 of 1 peers\)/);
  });

  it('says how LV-XAttn\'s partials travelled, and whether the plan chose, only where they travelled', () => {
    const two = (partials?: { forward: 'float32' | 'float16'; backward: 'float32' | 'float16' }) => [0, 1].map((r) => ({ ...rank(r, 0.1), ...(partials ? { partials } : {}) }));
    const as = (algorithm: 'lv-xattn' | 'ring', asked: 'auto' | 'float32' | 'float16', ranks = two({ forward: 'float16', backward: 'float32' })) =>
      formatSummary(summarize({ ...job, spec: { ...job.spec, attention: { ...job.spec.attention, algorithm, partials: asked } } }, 'cpu', ranks));
    expect(as('lv-xattn', 'auto')).toMatch(/partials on the wire\s+float16 forward, float32 backward \(chosen for the link: partials auto\)/);
    expect(as('lv-xattn', 'float16', two({ forward: 'float16', backward: 'float16' }))).toMatch(/partials on the wire\s+float16 in both passes$/m);
    expect(as('lv-xattn', 'auto')).toMatch(/job\s+quickstart \(\w+, lv-xattn, 2 workers, cpu\)/);
    expect(as('ring', 'auto')).not.toMatch(/partials/);
    expect(as('lv-xattn', 'auto', two())).not.toMatch(/partials/); // no call reported any
    expect(formatSummary(summarize(job, 'cpu', [{ ...rank(0, 0.1), partials: { forward: 'float32', backward: 'float32' } }]))).not.toMatch(/partials/);
  });

  it('says where LV-XAttn gathered its blocks (from three ranks on), and nothing where both passes went around the ring', () => {
    const ranks = (gathered?: { forward: boolean; backward: boolean }, n = 3) => Array.from({ length: n }, (_, r) => ({ ...rank(r, 0.1), ...(gathered ? { gathered } : {}) }));
    const as = (algorithm: 'lv-xattn' | 'ring', rs: ReturnType<typeof ranks>) =>
      formatSummary(summarize({ ...job, spec: { ...job.spec, attention: { ...job.spec.attention, algorithm } } }, 'cpu', rs));
    expect(as('lv-xattn', ranks({ forward: true, backward: true }))).toMatch(/text blocks\s+gathered in both passes \(each rank's block went to every rank at once/);
    expect(as('lv-xattn', ranks({ forward: false, backward: true }))).toMatch(/text blocks\s+around the ring forward, gathered backward/);
    expect(as('lv-xattn', ranks({ forward: false, backward: false }))).not.toMatch(/text blocks/);
    expect(as('lv-xattn', ranks())).not.toMatch(/text blocks/);
    expect(as('ring', ranks({ forward: true, backward: true }))).not.toMatch(/text blocks/);
  });

  it('says what the checkpoints cost, per save, where rank 0 wrote any', () => {
    const row = (checkpoints: { saved: number; waitSeconds: number; copySeconds: number; writeSeconds: number }) =>
      formatSummary(summarize(job, 'cpu', [{ ...rank(0, 0.1), checkpoints }, rank(1, 0.1)]));
    expect(row({ saved: 2, waitSeconds: 0, copySeconds: 1.9, writeSeconds: 10.1 })).toMatch(
      /checkpoints\s+2 written; each paused training 0\.95 s to copy the state, and was written behind the steps in 5\.05 s$/m,
    );
    expect(row({ saved: 3, waitSeconds: 6, copySeconds: 3, writeSeconds: 12 })).toMatch(
      /3 written; each paused training 2\.00 s for the previous write and 1\.00 s to copy the state, and was written behind the steps in 4\.00 s/,
    );
    expect(formatSummary(summarize(job, 'cpu', [rank(0, 0.1), rank(1, 0.1)]))).not.toMatch(/checkpoints/);
    expect(row({ saved: 0, waitSeconds: 0, copySeconds: 0, writeSeconds: 0 })).not.toMatch(/checkpoints/);
  });

  it('shows the slowest rank\'s batch preparation beside the step, only where every rank timed one (training)', () => {
    const withData = (r: number, data: number) => ({ ...rank(r, 0.1), medianBatchSeconds: data });
    const s = summarize(job, 'cuda', [withData(0, 0.004), withData(1, 0.012)]);
    expect(s.medianBatchSeconds).toBe(0.012);
    expect(s.stepSeconds).toBe(0.1); // the batch is not part of the step
    expect(formatSummary(s)).toMatch(/batch per step\s+median 12\.00 ms \(reading the data or computing synthetic targets; not in the step time\)$/m);
    expect(formatSummary(summarize(job, 'cpu', [withData(0, 0.004), rank(1, 0.1)]))).not.toMatch(/batch per step/);
  });

  it('rates attention over the time it ran where the ranks timed it (training), else over the step', () => {
    const w = job.spec.workload, m = { batch: w.batch, heads: 8, headDim: 32 }; // quickstart.yaml's model
    const flops = (layers: number) => 3.5 * layers * 4 * m.batch * m.heads * w.textTokens * w.visualTokens * m.headDim;
    const timed = (r: number, attn: number) => ({ ...rank(r, 0.2), attentionSecondsPerStep: attn });
    expect(summarize(job, 'cuda', [timed(0, 0.05), timed(1, 0.08)], { layers: 4 }).attentionTflopsPerWorker).toBeCloseTo(flops(4) / 2 / 0.08 / 1e12, 12);
    expect(summarize(job, 'cuda', [timed(0, 0.05), rank(1, 0.2)], { layers: 4 }).attentionTflopsPerWorker).toBeCloseTo(flops(4) / 2 / 0.2 / 1e12, 12);
  });

  it('leaves the link out where no link was probed (one rank)', () => {
    const s = summarize(job, 'cpu', [rank(0, 0.1)], { linkGbps: 0, linkPath: 'nccl' });
    expect(s.linkGbps).toBeUndefined();
    expect(s.linkPath).toBeUndefined();
    expect(formatSummary(s)).not.toMatch(/link/);
  });
});
