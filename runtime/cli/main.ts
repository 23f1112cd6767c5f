// The `xattn` command line: a thin layer over runLocal, runWorker, runOperator and validation.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runOperator, validateManifest } from '../../operator/index.js';
import { errorCode } from '../errors.js';
import { runLocal } from '../launcher/run-local.js';
import { runWorker } from '../worker/run-worker.js';
import { needsFanOut, runGang } from '../worker/gang.js';
import type { WorkerEvent } from '../worker/events.js';
import { formatSummary } from '../worker/summary.js';

const USAGE_EXIT = 2;

function fail(e: unknown): never {
  const code = errorCode(e);
  process.stderr.write(`xattn: error [${code}]: ${(e as Error).message ?? String(e)}\n`);
  if (process.env.XATTN_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(code === 'XATTN_E_USAGE' ? USAGE_EXIT : 1);
}

function intArg(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer.`);
    return n;
  };
}

export function buildCli(): Command {
  const program = new Command('xattn')
    .description('LV-XAttn: distributed cross-attention training over very long visual inputs')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('run')
    .description('run an XAttnJob manifest on this machine (one process per rank)')
    .argument('<manifest>', 'XAttnJob YAML file')
    .addOption(new Option('--algorithm <name>', 'override spec.attention.algorithm').choices(['lv-xattn', 'ring']))
    .option('--world-size <n>', 'override the number of workers', intArg('--world-size'))
    .option('--steps <n>', 'override spec.workload.steps', intArg('--steps'))
    .option('--metrics-port <port>', 'serve /metrics from rank r on port+r', intArg('--metrics-port'))
    .option('--checkpoint-dir <dir>', 'checkpoint directory (XATTN_CHECKPOINT_DIR)')
    .option('--json', 'print the summary as JSON')
    .action(async (manifest: string, o) => {
      try {
        const s = await runLocal(manifest, {
          algorithm: o.algorithm,
          worldSize: o.worldSize,
          steps: o.steps,
          metricsPort: o.metricsPort,
          checkpointDir: o.checkpointDir,
        });
        process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : `\nsummary\n${formatSummary(s)}\n`);
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('worker')
    .description('run one rank (reads the environment contract; started by the operator or xattn run)')
    .action(async () => {
      const emit = (e: WorkerEvent) => {
        if (e.type === 'ready') process.stdout.write(`rank ${e.rank} of ${e.worldSize} ready (pid ${process.pid}, ${e.backend} engine)\n`);
        if (process.send) process.send(e);
        else if (e.type === 'summary') process.stdout.write(`${formatSummary(e.summary)}\n`);
        else if (e.type === 'step') process.stdout.write(`${JSON.stringify(e)}\n`);
      };
      try {
        if (needsFanOut(process.env)) await runGang(process.argv[1]!);
        else await runWorker({ emit });
        process.exit(0);
      } catch (e) {
        const rank = Number(process.env.RANK ?? 0);
        if (process.send) process.send({ type: 'error', rank, code: errorCode(e), message: (e as Error).message });
        fail(e);
      }
    });

  program
    .command('validate')
    .description('check an XAttnJob manifest against the API schema')
    .argument('<manifest>')
    .action((manifest: string) => {
      try {
        const job = validateManifest(manifest);
        process.stdout.write(`${manifest}: valid XAttnJob '${job.metadata.name}'\n`);
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('operator')
    .description('run the XAttnJob controller (in-cluster config, or --kubeconfig / $KUBECONFIG)')
    .option('--kubeconfig <file>', 'kubeconfig file')
    .option('--context <name>', 'kubeconfig context')
    .option('-n, --namespace <ns>', 'watch only this namespace (default: all)')
    .option('--no-leader-elect', 'run without leader election (a single replica only)')
    .option('--metrics-address <addr>', '/metrics listen address', ':8080')
    .option('--health-address <addr>', '/healthz and /readyz listen address', ':8081')
    .option('--concurrency <n>', 'jobs reconciled in parallel', intArg('--concurrency'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(async (o) => {
      try {
        await runOperator({
          kubeconfig: o.kubeconfig,
          context: o.context,
          namespace: o.namespace,
          leaderElection: o.leaderElect,
          metricsAddress: o.metricsAddress,
          healthAddress: o.healthAddress,
          concurrency: o.concurrency,
          logLevel: o.logLevel,
        });
        process.exit(0);
      } catch (e) {
        fail(e);
      }
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode === 1 ? USAGE_EXIT : e.exitCode);
    fail(e);
  }
}
