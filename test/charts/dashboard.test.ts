// The Grafana dashboard: committed JSON equals the generator's output, every series it queries is
// one the code exports, and its structure is what Grafana (schemaVersion 39) loads. Grafana is not
// available here, so the structure is checked against a schema of the fields Grafana reads.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { beforeAll, describe, expect, it } from 'vitest';
import { dashboardText } from '../../charts/xattn-operator/dashboards/dashboard.js';
import { METRIC } from '../../runtime/metrics/names.js';
import { CHART } from './helm.js';
import { exportedNames, metricNames } from './promql-names.js';

const committedText = readFileSync(path.join(CHART, 'dashboards/xattn.json'), 'utf8');
const dashboard = JSON.parse(committedText);
const panels: any[] = dashboard.panels.filter((p: any) => p.type !== 'row');
const exprs = (): { panel: string; expr: string }[] => panels.flatMap((p) => p.targets.map((t: any) => ({ panel: p.title, expr: t.expr as string })));

const datasourceRef = z.object({ type: z.literal('prometheus'), uid: z.literal('${datasource}') }).strict();
const gridPos = z.object({ h: z.number().int().positive(), w: z.number().int().min(1).max(24), x: z.number().int().min(0).max(23), y: z.number().int().min(0) }).strict();
const target = z.object({
  datasource: datasourceRef,
  refId: z.string().regex(/^[A-Z]$/),
  expr: z.string().min(1),
  legendFormat: z.string().min(1),
  range: z.literal(true),
  instant: z.literal(false),
  editorMode: z.literal('code'),
});
const row = z.object({ id: z.number().int(), type: z.literal('row'), title: z.string().min(1), collapsed: z.literal(false), gridPos, panels: z.array(z.unknown()).length(0) });
const dataPanel = z.object({
  id: z.number().int(),
  type: z.enum(['timeseries', 'stat']),
  title: z.string().min(1),
  description: z.string().min(20),
  datasource: datasourceRef,
  gridPos,
  fieldConfig: z.object({ defaults: z.object({ unit: z.enum(['short', 'none', 's', 'bytes', 'Bps', 'percentunit', 'reqps']) }).passthrough(), overrides: z.array(z.unknown()) }),
  options: z.record(z.string(), z.unknown()),
  targets: z.array(target).min(1),
});
const variable = z.object({ name: z.string(), type: z.enum(['datasource', 'query']), hide: z.literal(0) }).passthrough();
const dashboardSchema = z.object({
  id: z.null(),
  uid: z.string().regex(/^[a-zA-Z0-9_-]{1,40}$/),
  title: z.string().min(1),
  schemaVersion: z.number().int().min(36),
  version: z.number().int(),
  refresh: z.string(),
  time: z.object({ from: z.string(), to: z.string() }),
  tags: z.array(z.string()),
  templating: z.object({ list: z.array(variable) }),
  annotations: z.object({ list: z.array(z.unknown()) }),
  panels: z.array(z.union([row, dataPanel])).min(1),
}).passthrough();

describe('generated dashboard', () => {
  it('is committed exactly as the generator writes it (run npm run dashboards)', () => {
    expect(committedText).toBe(dashboardText());
  });
});

describe('metric names', () => {
  let exported: Set<string>;
  beforeAll(async () => {
    exported = await exportedNames();
  });

  it('finds series names in PromQL (and only those)', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (xattnjob, le) (rate(xattn_step_duration_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))')).toEqual(['xattn_step_duration_seconds_bucket']);
    expect(metricNames('time() - min by (namespace) (a_b{x="y z"}) / on (namespace) group_left sum(c:d)')).toEqual(['a_b', 'c:d']);
  });

  it('uses only series the worker or the operator exports', () => {
    const unknown = exprs().flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !exported.has(n)).map((n) => `${panel}: ${n}`));
    expect(unknown).toEqual([]);
  });

  it('would catch a series no code exports', () => {
    expect(metricNames('rate(xattn_tokens_processed_total[5m])').filter((n) => !exported.has(n))).toEqual(['xattn_tokens_processed_total']);
  });

  it('shows every worker metric the runtime exports', () => {
    const used = new Set(exprs().flatMap(({ expr }) => metricNames(expr)));
    for (const t of dashboard.templating.list) if (t.definition) for (const n of metricNames(t.definition)) used.add(n);
    const unused = Object.values(METRIC).filter((m) => ![m, `${m}_bucket`, `${m}_sum`, `${m}_count`].some((n) => used.has(n)));
    expect(unused).toEqual([]);
  });
});

describe('dashboard structure', () => {
  it('has the fields Grafana reads, every panel on the datasource variable', () => {
    const r = dashboardSchema.safeParse(dashboard);
    expect(r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([]);
  });

  it('has unique panel ids and refIds, and panels that fit the grid without overlapping', () => {
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) expect(new Set(p.targets.map((t: any) => t.refId)).size).toBe(p.targets.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect(g.x + g.w, p.title).toBeLessThanOrEqual(24);
      for (let y = g.y; y < g.y + g.h; y++)
        for (let x = g.x; x < g.x + g.w; x++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
    }
  });

  it('has the datasource, namespace and job variables, the latter two from worker series', () => {
    const vars = Object.fromEntries(dashboard.templating.list.map((v: any) => [v.name, v]));
    expect(Object.keys(vars)).toEqual(['datasource', 'namespace', 'xattnjob']);
    expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['namespace', 'xattnjob']) {
      expect(vars[name]).toMatchObject({ type: 'query', datasource: { uid: '${datasource}' }, includeAll: true, multi: true });
      expect(vars[name].query.query).toBe(vars[name].definition);
      expect(vars[name].definition).toMatch(new RegExp(`^label_values\\(${METRIC.rankInfo}.*, ${name}\\)$`));
    }
    expect(vars.xattnjob.definition).toContain('namespace=~"$namespace"');
  });

  it('filters every worker query by namespace and job, and rates over $__rate_interval only', () => {
    for (const { panel, expr } of exprs()) {
      if (metricNames(expr).some((n) => n.startsWith('xattn_'))) {
        expect(expr, panel).toContain('namespace=~"$namespace"');
        expect(expr, panel).toContain('xattnjob=~"$xattnjob"');
      }
      for (const range of expr.match(/\[[^\]]*\]/g) ?? []) expect(range, panel).toBe('[$__rate_interval]');
    }
  });

  it('has the panels the issue asks for', () => {
    const titles = panels.map((p) => p.title).join('\n');
    for (const want of [/Text tokens\/s/, /Visual tokens\/s/, /TFLOP\/s per rank/, /Step time p50 \/ p95/, /communication wait vs compute/, /^Loss$/m, /^Memory per rank$/m, /checkpoint/i, /Jobs by phase/, /gang restarts/i, /Reconciles\/s/, /Reconcile errors/])
      expect(titles).toMatch(want);
  });
});
