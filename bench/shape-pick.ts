// Which of a benchmark's shapes an experiment runs: `--kernel-shapes 2,1,2` or `--dist-shapes 1` name them by
// index, in the order given (repeats allowed); absent, every shape in its own order.

/** The shapes `arg` names by index in `shapes`; all of them when `arg` is undefined. Throws naming the flag. */
export function pickShapes<T>(arg: string | undefined, shapes: readonly T[], flag: string): T[] {
  if (arg === undefined) return [...shapes];
  const picked = arg.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (!picked.every((i) => Number.isInteger(i) && i >= 0 && i < shapes.length))
    throw new Error(`--${flag} ${arg}: expected indices from 0 to ${shapes.length - 1}, separated by commas`);
  return picked.map((i) => shapes[i]!);
}
