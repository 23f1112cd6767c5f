// `npm run dashboards`: writes dashboards/xattn.json from the panel specs and the metric names the
// code exports. `--check` only compares (exit 1 when the committed file is stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dashboardText } from './dashboard.js';

export const DASHBOARD_FILE = fileURLToPath(new URL('./xattn.json', import.meta.url));

function main(argv: string[]): number {
  const text = dashboardText();
  if (argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(DASHBOARD_FILE, 'utf8');
    } catch {
      // missing: reported below as stale
    }
    if (committed === text) return 0;
    process.stderr.write(`${DASHBOARD_FILE} is stale: run npm run dashboards\n`);
    return 1;
  }
  writeFileSync(DASHBOARD_FILE, text);
  process.stdout.write(`wrote ${DASHBOARD_FILE}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
