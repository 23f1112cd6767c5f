#!/usr/bin/env node
// Summarizes the schedule traces that $XATTN_TRACE=<dir> writes (native/core/schedule_trace.h): per trace
// file and kind of call (schedule, direction, shape, chunks), the median time of each mark in ms after
// the call's first mark, dropping each kind's first `--skip` calls (warm-up). "gap" comes first: the
// stream's ms between the previous traced call's last mark and this call's first. --steady keeps only
// calls the stream reached within 0.05 ms of the previous one's end: steady state inside queued batches
// (bench:gpu's step times), without host-synced steps or a batch's first call.
//   node scripts/trace-summary.mjs [--skip 2] [--steady] <dir or trace files...>
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const skipAt = args.indexOf('--skip');
const skip = skipAt >= 0 ? Number(args.splice(skipAt, 2)[1]) : 2;
const steadyAt = args.indexOf('--steady');
const steady = steadyAt >= 0 && args.splice(steadyAt, 1).length > 0;
const files = args.flatMap((a) => (statSync(a).isDirectory() ? readdirSync(a).sort().map((f) => path.join(a, f)) : [a]));
if (!files.length || !Number.isInteger(skip)) {
  console.error('usage: node scripts/trace-summary.mjs [--skip N] <dir or trace files...>');
  process.exit(2);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const file of files) {
  console.log(`== ${file}`);
  const calls = new Map(); // call -> runs, each [[label, ms], ...]
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [call, ...marks] = line.split('  ');
    const run = marks.map((m) => [m.slice(0, m.lastIndexOf('@')), Number(m.slice(m.lastIndexOf('@') + 1))]);
    if (steady && !(run[0][0] === 'gap' && run[0][1] >= 0 && run[0][1] <= 0.05)) continue;
    if (!calls.has(call)) calls.set(call, []);
    calls.get(call).push(run);
  }
  for (const [call, runs] of calls) {
    const kept = runs.length > skip ? runs.slice(skip) : runs;
    const cols = kept[0].map(([label], j) => `${label}@${median(kept.map((r) => r[j]?.[1] ?? NaN)).toFixed(3)}`);
    console.log(`  ${call.padEnd(48)} (${kept.length})  ${cols.join(' ')}`);
  }
}
