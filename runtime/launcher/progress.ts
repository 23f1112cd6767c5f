// Progress of a local run: a bar on a TTY, otherwise a line every few steps.
import cliProgress from 'cli-progress';

/** Four significant digits: losses of a well-scaled model sit far below 1e-4 late in training. */
const formatLoss = (loss: number) => loss.toPrecision(4);

export interface Progress {
  update(step: number, steps: number, seconds: number, loss?: number): void;
  stop(): void;
}

export function makeProgress(stream: NodeJS.WriteStream | NodeJS.WritableStream, tty: boolean): Progress {
  if (tty) {
    const bar = new cliProgress.SingleBar(
      { format: 'step {value}/{total} |{bar}| {stepMs} ms/step {loss} eta {eta}s', stream: stream as NodeJS.WritableStream, fps: 10, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(step, steps, seconds, loss) {
        if (!started) bar.start(steps, 0, { stepMs: '-', loss: '' }), (started = true);
        bar.update(Math.max(0, step), { stepMs: (seconds * 1000).toFixed(1), loss: loss === undefined ? '' : `loss ${formatLoss(loss)}` });
      },
      stop: () => started && bar.stop(),
    };
  }
  let last = 0;
  return {
    update(step, steps, seconds, loss) {
      const every = Math.max(1, Math.round(steps / 10));
      if (step <= 0 || (step % every !== 0 && step !== steps) || step === last) return;
      last = step;
      const l = loss === undefined ? '' : ` loss ${formatLoss(loss)}`;
      stream.write(`step ${step}/${steps}  ${(seconds * 1000).toFixed(1)} ms/step${l}\n`);
    },
    stop() {},
  };
}
