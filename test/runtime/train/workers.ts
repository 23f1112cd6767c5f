// Starts a job's ranks as real `xattn worker` processes (the CLI entry, the env contract of
// runtime/launcher/local-env.ts) and records every event they send, so tests can compare per-step
// losses, kill or signal a rank mid-run, and restart the gang.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { validateXAttnJob } from '../../../crds/validate.js';
import type { XAttnJob } from '../../../crds/types.js';
import { localWorkerEnv } from '../../../runtime/launcher/local-env.js';
import type { WorkerEvent } from '../../../runtime/worker/events.js';
import { freePort } from '../../../runtime/rendezvous/free-port.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/xattn.js');

const live = new Set<ChildProcess>();
process.on('exit', () => live.forEach((c) => c.kill('SIGKILL')));

export interface RankExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface Gang {
  children: ChildProcess[];
  events: WorkerEvent[][];
  /** Resolves when every rank has exited. */
  exits: Promise<RankExit[]>;
  /** Calls fn on every event of every rank as it arrives. */
  onEvent(fn: (rank: number, e: WorkerEvent) => void): void;
}

/** A train-mode job for the tests: tiny shapes, float32, the given overrides. */
export function trainJob(name: string, spec: { workers: number; steps: number; [k: string]: unknown }, workload: Record<string, unknown> = {}): XAttnJob {
  const { workers, steps, ...rest } = spec;
  return validateXAttnJob({
    apiVersion: 'xattn.io/v1alpha1',
    kind: 'XAttnJob',
    metadata: { name },
    spec: {
      workers,
      model: { preset: 'custom', layers: 2, heads: 4, kvHeads: 2, headDim: 8, textHidden: 32, visualHidden: 24 },
      workload: { mode: 'train', textTokens: 12, visualTokens: 40, batch: 2, dtype: 'float32', steps, warmupSteps: 2, learningRate: 0.02, seed: 5, ...workload },
      ...rest,
    },
  });
}

export async function startGang(job: XAttnJob, o: { checkpointDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Gang> {
  const dir = mkdtempSync(path.join(tmpdir(), 'xattn-train-test-'));
  const config = path.join(dir, 'job.yaml');
  writeFileSync(config, stringify(job, { lineWidth: 0, aliasDuplicateObjects: false }));
  const world = job.spec.workers;
  const masterPort = await freePort();
  const token = randomBytes(24).toString('hex');
  const events: WorkerEvent[][] = Array.from({ length: world }, () => []);
  const listeners: ((rank: number, e: WorkerEvent) => void)[] = [];
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: world }, (_, rank) => {
    const env = {
      ...process.env,
      ...o.env,
      XATTN_TIMEOUT_MS: '20000',
      ...localWorkerEnv({ rank, worldSize: world, masterPort, jobName: job.metadata.name, config, token, checkpointDir: o.checkpointDir }),
    };
    const child = fork(CLI, ['worker'], { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    live.add(child);
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('message', (m: WorkerEvent) => {
      events[rank]!.push(m);
      for (const l of listeners) l(rank, m);
    });
    return new Promise<RankExit>((resolve) =>
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal, stderr });
      }),
    );
  });
  return { children, events, exits: Promise.all(exits), onEvent: (fn) => listeners.push(fn) };
}

/** Runs a gang to completion and fails with every rank's stderr unless all exit 0. */
export async function runGang(job: XAttnJob, o: { checkpointDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Gang> {
  const g = await startGang(job, o);
  const exits = await g.exits;
  if (exits.some((e) => e.code !== 0))
    throw new Error(exits.map((e, r) => `rank ${r}: code ${e.code} signal ${e.signal}\n${e.stderr.slice(-1500)}`).join('\n'));
  return g;
}

/** Rank r's losses by step. */
export function lossesOf(g: Gang, rank = 0): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of g.events[rank]!) if (e.type === 'step' && e.loss !== undefined) m.set(e.step, e.loss);
  return m;
}
