import { describe, expect, it } from 'vitest';
import type { XAttnJobSpec } from '../../crds/types.js';
import { ManifestError, celProblems, immutableFieldProblems, jobNameProblem, loadCrd, validateXAttnJob } from '../../crds/validate.js';

const manifest = (spec: Record<string, unknown> = {}, name = 'demo') => ({ apiVersion: 'xattn.io/v1alpha1', kind: 'XAttnJob', metadata: { name }, spec: { workers: 2, ...spec } });

describe('types and schema', () => {
  it('name the same spec fields', () => {
    // Required<> makes the compiler insist on every field of XAttnJobSpec.
    const every: Required<XAttnJobSpec> = {
      workers: 1, gpusPerWorker: 0, image: 'i', imagePullPolicy: 'Always', imagePullSecrets: [],
      model: { preset: 'tiny' }, workload: {} as any, attention: {} as any, checkpoint: {} as any, networking: {} as any,
      resources: {}, scheduling: {} as any, runPolicy: {} as any, failurePolicy: {}, metrics: { port: 1 },
    };
    const schema = loadCrd().spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect(Object.keys(schema).sort()).toEqual(Object.keys(every).sort());
  });
});

describe('job names', () => {
  it.each(['a', 'llama-vision', 'x'.repeat(51)])('accepts %s', (n) => expect(jobNameProblem(n)).toBeUndefined());
  it.each(['9lives', 'Upper', 'trailing-', 'x'.repeat(52), 'dots.not.ok'])('refuses %s', (n) => expect(jobNameProblem(n)).toMatch(/at most 51/));
  it('is checked by validateXAttnJob', () => expect(() => validateXAttnJob(manifest({}, '9lives'))).toThrow(ManifestError));
});

describe('CEL mirrors', () => {
  const spec = (s: Record<string, unknown>) => ({ ...validateXAttnJob(manifest()).spec, ...s }) as XAttnJobSpec;
  it('passes a defaulted job', () => expect(celProblems(validateXAttnJob(manifest()).spec)).toEqual([]));
  it('counts GPUs in the world size when checking token shards', () => {
    const s = spec({ workers: 2, gpusPerWorker: 8, workload: { ...validateXAttnJob(manifest()).spec.workload, textTokens: 15 } });
    expect(celProblems(s)).toEqual(['workload.textTokens and workload.visualTokens must each be at least the world size (every rank holds a shard)']);
  });
  it('reports every problem at once', () => {
    expect(() => validateXAttnJob(manifest({ metrics: { port: 29500 }, networking: { ncclEnv: { X: '1' } } }))).toThrow(/metrics\.port must differ[\s\S]*ncclEnv keys must start/);
  });
  it('fills defaults as the API server does', () => {
    const j = validateXAttnJob(manifest());
    expect(j.spec).toMatchObject({ gpusPerWorker: 0, attention: { algorithm: 'lv-xattn', recomputeKV: true, partials: 'auto' }, runPolicy: { backoffLimit: 3, suspend: false, cleanPodPolicy: 'Running' }, scheduling: { gang: 'none', scheduleTimeoutSeconds: 300 }, networking: { shmSize: '8Gi', masterPort: 29500 } });
  });
});

describe('attention.partials', () => {
  it.each(['float16', 'float32', 'auto'] as const)('takes %s and it reaches the engine calls of both workload modes', async (partials) => {
    const { trainCall } = await import('../../runtime/train/trainer.js');
    const { benchmarkCall } = await import('../../runtime/worker/attention-bench.js');
    const j = validateXAttnJob(manifest({ model: { preset: 'tiny' }, attention: { partials } }));
    expect(benchmarkCall(j).partials).toBe(partials);
    expect(trainCall(j, { heads: 4, kvHeads: 2, headDim: 16 } as never).partials).toBe(partials);
  });
  it('refuses anything else, naming the field', () => {
    expect(() => validateXAttnJob(manifest({ attention: { partials: 'bfloat16' } }))).toThrow(/partials/);
  });
});

describe('immutableFieldProblems', () => {
  const base = validateXAttnJob(manifest({ model: { heads: 8, kvHeads: 2 } })).spec;
  it('allows run policy and image changes', () => {
    expect(immutableFieldProblems(base, { ...base, image: 'x', runPolicy: { ...base.runPolicy, suspend: true } })).toEqual([]);
  });
  it('refuses resizing and shape changes, whatever the key order', () => {
    expect(immutableFieldProblems(base, { ...base, workers: 4 })).toEqual(['workers and gpusPerWorker are immutable; create a new XAttnJob to resize']);
    expect(immutableFieldProblems(base, { ...base, model: { ...base.model, heads: 16 } })).toEqual(['model, workload and attention are immutable after creation']);
    const reordered = Object.fromEntries(Object.entries(base.model).reverse()) as XAttnJobSpec['model'];
    expect(immutableFieldProblems(base, { ...base, model: reordered })).toEqual([]);
  });
});
