// The Deployment's container args must be a command line the image's `xattn` accepts: every flag
// the chart renders is declared by `xattn operator`, and the whole line parses (with the command's
// action swapped out, so nothing starts).
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildCli } from '../../runtime/cli/main.js';
import { findObject, renderChart } from './helm.js';

function operatorCommand(program: Command): Command {
  const cmd = program.commands.find((c) => c.name() === 'operator');
  if (!cmd) throw new Error('`xattn operator` does not exist, but the chart runs it');
  return cmd;
}

describe.each([
  ['default values', [] as string[]],
  ['full.yaml', ['full.yaml']],
  ['minimal.yaml', ['minimal.yaml']],
])('the operator command line rendered with %s', (_label, values) => {
  it('uses only flags `xattn operator` declares, and parses', async () => {
    const objs = await renderChart({ values, monitoringApi: true });
    const args: string[] = findObject(objs, 'Deployment').spec.template.spec.containers[0].args;
    expect(args[0]).toBe('operator');

    const program = buildCli();
    const cmd = operatorCommand(program);
    const declared = new Set(cmd.options.flatMap((o) => [o.long, o.short].filter(Boolean)));
    const used = args.slice(1).map((a) => a.split('=')[0]!);
    expect(used.filter((f) => !declared.has(f))).toEqual([]);

    let parsed: Record<string, unknown> | undefined;
    cmd.action((opts: Record<string, unknown>) => {
      parsed = opts;
    });
    program.exitOverride();
    cmd.exitOverride();
    await program.parseAsync(['node', 'xattn', ...args]);
    expect(parsed).toBeDefined();
  });
});
