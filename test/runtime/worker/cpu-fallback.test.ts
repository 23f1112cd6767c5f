// A manifest that asks for GPUs on a machine where the CUDA engine cannot run gets a warning naming why,
// not a silent switch to the (far slower) CPU engine.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readXAttnJob } from '../../../crds/validate.js';
import { cpuFallbackReason } from '../../../runtime/worker/run-worker.js';

const gpuJob = readXAttnJob(fileURLToPath(new URL('../../../examples/train-gpu.yaml', import.meta.url)));
const cpuJob = readXAttnJob(fileURLToPath(new URL('../../../examples/quickstart.yaml', import.meta.url)));

describe('CPU fallback warning', () => {
  it('names the reason where a GPU job runs on the CPU engine', () => {
    expect(cpuFallbackReason(gpuJob, {}, 'cpu', true)).toMatch(/^gpusPerWorker is 1 but no CUDA device is visible: running on the CPU engine/);
    expect(cpuFallbackReason(gpuJob, {}, 'cpu', false)).toMatch(/the native addon was built without CUDA/);
  });

  it('stays quiet where the job asked for no GPU, runs on one, or the CPU engine was asked for', () => {
    expect(cpuFallbackReason(cpuJob, {}, 'cpu', false)).toBeUndefined();
    expect(cpuFallbackReason(gpuJob, {}, 'cuda', true)).toBeUndefined();
    expect(cpuFallbackReason(gpuJob, { XATTN_BACKEND: 'cpu' }, 'cpu', true)).toBeUndefined();
  });
});
