// Child processes of the test cluster: started with logs to files, stopped by pid (never by name),
// and killed when the test process exits however it exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

export { freePort } from '../../../runtime/rendezvous/free-port.js';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface Managed {
  proc: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

export function startProcess(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Managed {
  const log = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  proc.stdout!.pipe(log, { end: false });
  proc.stderr!.pipe(log, { end: false });
  live.add(proc);
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => {
      live.delete(proc);
      resolve(code);
    });
    proc.on('error', () => {
      live.delete(proc);
      resolve(-1);
    });
  });
  return { proc, logFile, exited };
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
export async function stopProcess(m: Managed | undefined, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!m || m.proc.exitCode !== null || m.proc.signalCode !== null) return;
  m.proc.kill(signal);
  const timer = setTimeout(() => m.proc.kill('SIGKILL'), graceMs);
  await m.exited;
  clearTimeout(timer);
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Thrown by a waitFor probe when what it waits for can no longer happen: waiting stops at once. */
export class WaitAbandoned extends Error {}

/** For a waitFor probe: abandons the wait if the process has exited (its log tail in the message). */
export function mustBeRunning(m: Managed, name: string): void {
  if (m.proc.exitCode === null && m.proc.signalCode === null) return;
  throw new WaitAbandoned(`${name} exited with ${m.proc.exitCode ?? m.proc.signalCode}:\n${tail(m.logFile)}`);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      if (e instanceof WaitAbandoned) throw e;
      lastError = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
