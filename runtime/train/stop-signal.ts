// Turns SIGTERM (pod deletion, preemption) and SIGINT (Ctrl-C reaches local workers too) into a stop
// request the training loop honours at the next step boundary, after checkpointing. Repeats are
// ignored: the launcher (or the kubelet after the grace period) escalates to SIGKILL if need be.
export interface StopSignal {
  requested(): boolean;
  /** The signal that asked to stop, if any. */
  signal(): NodeJS.Signals | undefined;
  dispose(): void;
}

export function watchStopSignals(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): StopSignal {
  let got: NodeJS.Signals | undefined;
  const handler = (s: NodeJS.Signals) => {
    if (got) return;
    got = s;
    process.stderr.write(`xattn: ${s}: stopping after the current step (a checkpoint is written first)\n`);
  };
  for (const s of signals) process.on(s, handler);
  return {
    requested: () => got !== undefined,
    signal: () => got,
    dispose: () => signals.forEach((s) => process.off(s, handler)),
  };
}
