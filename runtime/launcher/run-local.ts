// `xattn run`: starts WORLD_SIZE worker processes on this machine for one manifest.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { readXAttnJob } from '../../crds/validate.js';
import { worldSize as jobWorldSize, type Algorithm, type XAttnJob } from '../../crds/types.js';
import { XattnError } from '../errors.js';
import { freePort } from '../rendezvous/free-port.js';
import type { WorkerEvent } from '../worker/events.js';
import type { RunSummary } from '../worker/summary.js';
import { localWorkerEnv } from './local-env.js';
import { makeProgress } from './progress.js';

export interface RunLocalOptions {
  algorithm?: Algorithm;
  worldSize?: number;
  steps?: number;
  /** Script that runs `xattn worker` (defaults to this CLI's entry). */
  workerEntry?: string;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  tty?: boolean;
  checkpointDir?: string;
  metricsPort?: number;
  extraEnv?: NodeJS.ProcessEnv;
}

export function applyOverrides(job: XAttnJob, o: Pick<RunLocalOptions, 'algorithm' | 'worldSize' | 'steps'>): XAttnJob {
  const j = structuredClone(job);
  if (o.algorithm) j.spec.attention.algorithm = o.algorithm;
  if (o.worldSize !== undefined) {
    if (!Number.isInteger(o.worldSize) || o.worldSize < 1)
      throw new XattnError('XATTN_E_USAGE', `--world-size must be a positive integer, got ${o.worldSize}`);
    j.spec.workers = o.worldSize;
    j.spec.gpusPerWorker = Math.min(j.spec.gpusPerWorker, 1);
  }
  if (o.steps !== undefined) j.spec.workload.steps = o.steps;
  return j;
}

function prefixLines(stream: NodeJS.ReadableStream, out: NodeJS.WritableStream, prefix: string, keep: string[]): void {
  createInterface({ input: stream }).on('line', (line) => {
    keep.push(line);
    if (keep.length > 20) keep.shift();
    out.write(`${prefix} ${line}\n`);
  });
}

export async function runLocal(manifest: string, opts: RunLocalOptions = {}): Promise<RunSummary> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const job = applyOverrides(readXAttnJob(manifest), opts);
  const world = jobWorldSize(job.spec);
  const dir = mkdtempSync(path.join(tmpdir(), `xattn-${job.metadata.name}-`));
  const config = path.join(dir, 'job.yaml');
  writeFileSync(config, stringify(job, { lineWidth: 0, aliasDuplicateObjects: false }));
  const token = randomBytes(32).toString('hex');
  const masterPort = await freePort();
  const entry = opts.workerEntry ?? process.argv[1]!;
  const progress = makeProgress(stderr as NodeJS.WriteStream, opts.tty ?? Boolean((stderr as NodeJS.WriteStream).isTTY));
  stdout.write(`xattn: ${job.metadata.name}: ${world} worker${world > 1 ? 's' : ''}, ${job.spec.attention.algorithm}, ${job.spec.workload.mode}\n`);

  const children: ChildProcess[] = [];
  let summary: RunSummary | undefined;
  let firstFailure: XattnError | undefined;
  const stopAll = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    setTimeout(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')), 5000).unref();
  };
  const onSignal = () => {
    firstFailure ??= new XattnError('XATTN_E_INTERRUPTED', 'interrupted');
    stopAll();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const exits = Array.from({ length: world }, (_, rank) => {
      // Local workers share this machine's cores: give each its part unless the user chose.
      const threads = process.env.XATTN_CPU_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / world)));
      const env = { ...process.env, XATTN_CPU_THREADS: threads, ...opts.extraEnv, ...localWorkerEnv({ rank, worldSize: world, masterPort, jobName: job.metadata.name, config, token, checkpointDir: opts.checkpointDir, metricsPort: opts.metricsPort }) };
      const child = fork(entry, ['worker'], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: process.execArgv });
      children.push(child);
      const lastLines: string[] = [];
      let reported: WorkerEvent | undefined;
      prefixLines(child.stdout!, stdout, `[rank ${rank}]`, lastLines);
      prefixLines(child.stderr!, stderr, `[rank ${rank}]`, lastLines);
      child.on('message', (m: WorkerEvent) => {
        if (m.type === 'step' && m.rank === 0) progress.update(m.step, m.steps, m.seconds, m.loss);
        else if (m.type === 'summary') summary = m.summary;
        else if (m.type === 'error') reported = m;
      });
      return new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          if (code !== 0 && !firstFailure) {
            const why = reported?.type === 'error' ? reported.message : lastLines.slice(-3).join(' | ') || 'no output';
            firstFailure = new XattnError('XATTN_E_WORKER_FAILED', `rank ${rank} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${why}`);
            stopAll();
          }
          resolve();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  }
  if (firstFailure) throw firstFailure;
  if (!summary) throw new XattnError('XATTN_E_WORKER_FAILED', 'the workers exited without a summary');
  return summary;
}
