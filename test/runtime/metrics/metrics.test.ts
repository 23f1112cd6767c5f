// The worker's /metrics: answered while a training step runs on the engine's native thread, with
// every series of runtime/metrics/names.ts, bounded labels, and values that follow the run.
import client from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { validateXAttnJob } from '../../../crds/validate.js';
import { Engine } from '../../../runtime/engine/engine.js';
import { startMetricsServer } from '../../../runtime/metrics/server.js';
import { METRIC } from '../../../runtime/metrics/names.js';
import { benchmarkSample } from '../../../runtime/metrics/worker-telemetry.js';
import { WorkerMetrics } from '../../../runtime/metrics/worker-metrics.js';
import { runTraining } from '../../../runtime/train/run-training.js';
import { runAttentionBenchmark } from '../../../runtime/worker/attention-bench.js';

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

const job = (mode: 'train' | 'benchmark') =>
  validateXAttnJob({
    apiVersion: 'xattn.io/v1alpha1',
    kind: 'XAttnJob',
    metadata: { name: 'metrics' },
    spec: {
      model: { preset: 'custom', layers: 2, heads: 4, kvHeads: 2, headDim: 16, textHidden: 64, visualHidden: 64 },
      workload: { mode, textTokens: 32, visualTokens: 8192, batch: 1, dtype: 'float32', steps: 3, learningRate: 0.01 },
    },
  });

/** Parses the value of one series (exact label set) from Prometheus text. */
function value(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  if (!line) throw new Error(`no series ${name}{${labels}} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function serve(m: WorkerMetrics): Promise<string> {
  const s = await startMetricsServer(m.registry, 0, '127.0.0.1');
  closers.push(() => s.close());
  return `http://127.0.0.1:${s.port}`;
}

describe('worker metrics', () => {
  it('answers /metrics while a training step runs, with every series', async () => {
    const engine = Engine.create();
    closers.push(() => engine.close());
    const metrics = new WorkerMetrics({ rank: 0, worldSize: 1, backend: 'cpu', algorithm: 'lv-xattn' });
    // Records, at the moment the server builds each response, whether a step was in flight.
    let inStep = false;
    const scrapedInStep: boolean[] = [];
    new client.Gauge({ name: 'test_probe', help: 'test', registers: [metrics.registry], collect: () => void scrapedInStep.push(inStep) });
    const url = await serve(metrics);
    let running = true;
    const bodies: string[] = [];
    const poller = (async () => {
      while (running) {
        const r = await fetch(`${url}/metrics`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toContain('text/plain');
        bodies.push(await r.text());
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    const losses: number[] = [];
    await runTraining(engine, job('train'), {
      rank: 0,
      worldSize: 1,
      metrics,
      stopRequested: () => ((inStep = true), false), // asked right before each step starts
      onStep: (e) => {
        inStep = false;
        losses.push(e.loss);
      },
    });
    running = false;
    await poller;
    expect(scrapedInStep.filter(Boolean).length, 'scrapes answered while a step was running').toBeGreaterThan(0);

    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of Object.values(METRIC)) expect(text, name).toContain(`# TYPE ${name} `);
    const l = 'rank="0",algorithm="lv-xattn"';
    expect(value(text, METRIC.stepsTotal, l)).toBe(3);
    expect(value(text, `${METRIC.stepDurationSeconds}_count`, l)).toBe(3);
    expect(value(text, `${METRIC.batchDurationSeconds}_count`, l)).toBe(3);
    expect(value(text, `${METRIC.batchDurationSeconds}_sum`, l)).toBeGreaterThan(0); // the teacher's forward
    expect(value(text, METRIC.textTokensTotal, l)).toBe(3 * 32);
    expect(value(text, METRIC.visualTokensTotal, l)).toBe(3 * 8192);
    expect(value(text, METRIC.loss, l)).toBeCloseTo(losses[2]!, 6);
    expect(value(text, METRIC.learningRate, l)).toBe(0.01);
    expect(value(text, METRIC.attentionTflops, l)).toBeGreaterThan(0);
    expect(value(text, METRIC.modelTflops, l)).toBeGreaterThan(0);
    expect(value(text, METRIC.memoryBytes, l)).toBeGreaterThan(1e6);
    expect(value(text, METRIC.lastStepTimestampSeconds, l)).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(value(text, METRIC.rankInfo, `world_size="1",backend="cpu",${l}`)).toBe(1);
    for (const op of ['attention', 'all_reduce']) expect(value(text, METRIC.commBytesTotal, `op="${op}",${l}`)).toBe(0); // one rank sends nothing
    // Bounded labels only: no step numbers or other free-form labels on our series.
    const labelNames = new Set([...text.matchAll(/^xattn_\w+\{([^}]*)\}/gm)].flatMap((m) => [...m[1]!.matchAll(/(\w+)="/g)].map((x) => x[1])));
    expect([...labelNames].sort()).toEqual(['algorithm', 'backend', 'le', 'op', 'rank', 'world_size']);
    expect(bodies.length).toBeGreaterThan(0);
  });

  it('benchmark steps update the same series', async () => {
    const engine = Engine.create();
    closers.push(() => engine.close());
    const metrics = new WorkerMetrics({ rank: 0, worldSize: 1, backend: 'cpu', algorithm: 'ring' });
    const j = job('benchmark');
    await runAttentionBenchmark(engine, j, 0, 1, (e) => e.step > 0 && metrics.recordStep(benchmarkSample(j, 0, 1, e)));
    const text = await metrics.registry.metrics();
    const l = 'rank="0",algorithm="ring"';
    expect(value(text, METRIC.stepsTotal, l)).toBe(3);
    expect(value(text, METRIC.visualTokensTotal, l)).toBe(3 * 8192);
    expect(value(text, METRIC.attentionTflops, l)).toBeGreaterThan(0);
  });

  it('exports the probed link in bytes per second, asking the engine only until it is known', async () => {
    const metrics = new WorkerMetrics({ rank: 1, worldSize: 2, backend: 'cpu', algorithm: 'lv-xattn' });
    const l = 'rank="1",algorithm="lv-xattn"';
    const probes: number[] = [];
    const probe = (gbps: number) => () => (probes.push(gbps), gbps);
    metrics.recordLink(probe(0)); // not probed yet: nothing to report
    expect(value(await metrics.registry.metrics(), METRIC.linkBytesPerSecond, l)).toBe(0);
    metrics.recordLink(probe(23.25));
    metrics.recordLink(probe(99)); // known: the engine is not asked again
    expect(value(await metrics.registry.metrics(), METRIC.linkBytesPerSecond, l)).toBe(23.25e9);
    expect(probes).toEqual([0, 23.25]);

    const single = new WorkerMetrics({ rank: 0, worldSize: 1, backend: 'cpu', algorithm: 'lv-xattn' });
    single.recordLink(probe(7)); // one rank: no link, no engine call
    expect(probes).toEqual([0, 23.25]);
  });

  it('serves /healthz, refuses other paths, and names a port in use', async () => {
    const metrics = new WorkerMetrics({ rank: 1, worldSize: 2, backend: 'cpu', algorithm: 'lv-xattn' });
    const url = await serve(metrics);
    const h = await fetch(`${url}/healthz`);
    expect([h.status, await h.text()]).toEqual([200, 'ok\n']);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
    const err = await startMetricsServer(metrics.registry, Number(new URL(url).port), '127.0.0.1').catch((e) => e);
    expect(err.code).toBe('XATTN_E_METRICS');
    expect(err.message).toMatch(/port is in use/);
  });
});
