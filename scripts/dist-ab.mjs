#!/usr/bin/env node
// A/B of distributed schedule settings on one machine, in one call: runs bench:gpu's distributed part once
// per variant per round (the order reversed every other round, so drift and heat fall on all alike), each
// with its variant's environment added, and prints per interconnect and shape the median LV-XAttn step,
// no-comm step and LV/bound of each variant, with every run's ratio. A variant whose run fails (a setting
// that hangs the ranks until the gang's timeout, say) is named at the end and runs no more; the others go
// on, and the exit status is then 1.
//   node scripts/dist-ab.mjs [--rounds 2] [--bench dist/bench-gpu.mjs] NAME=[VAR=VALUE,...] ... [-- BENCH ARGS]
//   e.g. node scripts/dist-ab.mjs base= split=XATTN_LV_FIRST_SHARE=0.8 -- --interconnects nvlink --iters 3
//   (a variant may name its own addon build: new=XATTN_ADDON=/abs/path/xattn.node)
// Each run's JSON and log go to $OUT/NAME-ROUND/, and the table to $OUT/table.txt (or under /tmp/dist-ab),
// rewritten after every run, so a call cut short by its time limit keeps the runs it finished;
// runs.json and logs.txt beside it hold every run's rows and log too (the GPU machine returns only so many
// files, and the per-run folders come last). With --scaling among the bench args it A/Bs the strong-scaling
// runs instead (e.g. -- --scaling --world-sizes 4 on a 4-GPU machine), each cell then named by its P.
// Needs the GPU machine's Node and bundles (or, with XATTN_BENCH_SMOKE=1 and --bench bench/gpu.ts, CPU
// ranks at a toy shape).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** "split=A=1,B=2" -> { name: 'split', env: { A: '1', B: '2' } }; "base=" -> no settings. */
export function parseVariant(arg) {
  const at = arg.indexOf('=');
  if (at <= 0) throw new Error(`variant "${arg}": expected NAME=[VAR=VALUE,...] (e.g. base= or split=XATTN_LV_FIRST_SHARE=0.8)`);
  const env = {};
  for (const kv of arg.slice(at + 1).split(',').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`variant "${arg}": "${kv}" is not VAR=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { name: arg.slice(0, at), env };
}

/** Lines of the table: per interconnect and shape (and P, `withP`), each variant's medians and its runs' ratios. */
export function table(runs, withP = false) {
  const cells = new Map(); // "interconnect shape" -> variant -> rows
  for (const { variant, rows } of runs)
    for (const r of rows) {
      const cell = `${withP ? `P=${r.P} ` : ''}${r.interconnect}  ${r.shape}`;
      if (!cells.has(cell)) cells.set(cell, new Map());
      const byVariant = cells.get(cell);
      if (!byVariant.has(variant)) byVariant.set(variant, []);
      byVariant.get(variant).push(r);
    }
  const lines = [];
  for (const [cell, byVariant] of cells) {
    lines.push(cell);
    for (const [variant, rows] of byVariant) {
      const m = (f) => median(rows.map(f)).toFixed(3);
      lines.push(`  ${variant.padEnd(16)} LV ${m((r) => r.lvxattn_ms)} ms  no-comm ${m((r) => r.nocomm_ms)} ms  LV/bound ${m((r) => r.lv_bound_ratio)}  (${rows.map((r) => r.lv_bound_ratio.toFixed(3)).join(' ')})`);
    }
  }
  return lines;
}

function main(argv) {
  const dash = argv.indexOf('--');
  const [own, benchArgs] = dash >= 0 ? [argv.slice(0, dash), argv.slice(dash + 1)] : [argv, []];
  let rounds = 2;
  let bench = existsSync('dist/bench-gpu.mjs') ? 'dist/bench-gpu.mjs' : 'bench/gpu.ts';
  const variants = [];
  for (let i = 0; i < own.length; i++) {
    if (own[i] === '--rounds') rounds = Number(own[++i]);
    else if (own[i] === '--bench') bench = own[++i];
    else variants.push(parseVariant(own[i]));
  }
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: expected a positive integer');
  if (variants.length < 1) throw new Error('usage: node scripts/dist-ab.mjs [--rounds 2] [--bench FILE] NAME=[VAR=VALUE,...] ... [-- BENCH ARGS]');
  const out = process.env.OUT ?? '/tmp/dist-ab';
  mkdirSync(out, { recursive: true });
  const scaling = benchArgs.includes('--scaling'); // strong-scaling rows (every P), else (b)'s 2-GPU ones
  const runs = [], logs = [], failed = new Map(); // variant name -> why its run failed (it runs no more)
  let lines = [];
  for (let round = 0; round < rounds; round++)
    for (const v of round % 2 ? [...variants].reverse() : variants) {
      if (failed.has(v.name)) continue;
      const dir = path.join(out, `${v.name}-${round}`);
      mkdirSync(dir, { recursive: true });
      const node = bench.endsWith('.ts') ? ['--import', 'tsx', bench] : [bench];
      console.log(`== round ${round + 1}/${rounds}: ${v.name} ${JSON.stringify(v.env)}`);
      const r = spawnSync(process.execPath, [...node, ...(scaling ? [] : ['--distributed-only']), ...benchArgs], { env: { ...process.env, ...v.env, XATTN_BENCH_OUT: dir }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      writeFileSync(path.join(dir, 'bench.log'), r.stdout);
      logs.push(`== ${v.name}, round ${round + 1}\n${r.stdout}`);
      const file = readdirSync(dir).find((f) => f.endsWith('.json'));
      if (r.status !== 0 || !file) {
        const why = `round ${round + 1}: the bench failed (${r.status === null ? `killed by ${r.signal}` : `exit ${r.status}`}); its output is in ${dir}/bench.log`;
        console.log(`== ${v.name} ${why}; it runs no more`);
        failed.set(v.name, why);
      } else {
        const result = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
        runs.push({ variant: v.name, round: round + 1, rows: scaling ? result.scaling : result.distributed });
      }
      lines = report(out, runs, logs, failed, scaling); // after every run: a call cut short keeps the runs it finished
    }
  console.log(lines.join('\n'));
  return failed.size ? 1 : 0;
}

/** Writes runs.json, logs.txt and table.txt for the runs so far; returns the table's lines. */
function report(out, runs, logs, failed, scaling) {
  writeFileSync(path.join(out, 'runs.json'), `${JSON.stringify(runs, null, 1)}\n`);
  writeFileSync(path.join(out, 'logs.txt'), logs.join('\n'));
  const lines = [...table(runs, scaling), ...[...failed].map(([name, why]) => `failed: ${name}, ${why}`)];
  writeFileSync(path.join(out, 'table.txt'), `${lines.join('\n')}\n`);
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`dist-ab: ${e.message}`);
    process.exit(2);
  }
}
