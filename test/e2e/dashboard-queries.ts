// The committed dashboard's queries as Grafana would send them: template variables and
// $__rate_interval substituted.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DASHBOARD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../charts/xattn-operator/dashboards/xattn.json');

export interface PanelQuery {
  /** "<panel title> / <refId>" */
  id: string;
  expr: string;
}

export interface VariableQuery {
  name: string;
  metric: string;
  label: string;
}

export function loadDashboard(): any {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8'));
}

/** Escapes a value for a =~ matcher, as Grafana does for a single-value regex variable. */
const regexEscape = (v: string) => v.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');

export function substitute(expr: string, vars: Record<string, string>, rateInterval: string): string {
  let out = expr.replaceAll('$__rate_interval', rateInterval);
  // Longest names first, so $namespace is not taken for a prefix of another variable.
  for (const name of Object.keys(vars).sort((a, b) => b.length - a.length)) {
    out = out.replaceAll(`\${${name}}`, regexEscape(vars[name]!)).replaceAll(`$${name}`, regexEscape(vars[name]!));
  }
  const left = /\$[A-Za-z_{]/.exec(out);
  if (left) throw new Error(`unsubstituted variable in: ${out}`);
  return out;
}

export function panelQueries(dashboard: any, vars: Record<string, string>, rateInterval: string): PanelQuery[] {
  return dashboard.panels
    .filter((p: any) => p.type !== 'row')
    .flatMap((p: any) => p.targets.map((t: any) => ({ id: `${p.title} / ${t.refId}`, expr: substitute(t.expr, vars, rateInterval) })));
}

/** The label_values(metric, label) query variables, their metric selector substituted. */
export function variableQueries(dashboard: any, vars: Record<string, string>): VariableQuery[] {
  return dashboard.templating.list
    .filter((v: any) => v.type === 'query')
    .map((v: any) => {
      const m = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(v.definition);
      if (!m) throw new Error(`variable ${v.name}: not a label_values() query: ${v.definition}`);
      return { name: v.name, metric: substitute(m[1]!, vars, ''), label: m[2]! };
    });
}
