// Messages a worker sends to whoever started it (the local launcher over IPC; logs in a pod).
import type { RunSummary } from './summary.js';

export type WorkerEvent =
  | { type: 'ready'; rank: number; worldSize: number; backend: string }
  | { type: 'step'; rank: number; step: number; steps: number; seconds: number; bytesSent: number; loss?: number }
  | { type: 'summary'; rank: number; summary: RunSummary }
  | { type: 'error'; rank: number; code: string; message: string };

export type Emit = (e: WorkerEvent) => void;
