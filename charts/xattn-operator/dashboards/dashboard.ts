// Turns the panel specs into Grafana dashboard JSON (schemaVersion 39): rows laid out on the
// 24-column grid, every query on the ${datasource} variable, and the namespace/job variables.
import { ROWS, type PanelSpec, type RowSpec } from './panels.js';
import { JOB_LABEL, WORKER } from './sources.js';

export const DASHBOARD_UID = 'xattn-training';
export const DASHBOARD_TITLE = 'xattn: training jobs';
const PANEL_HEIGHT = { timeseries: 8, stat: 5 } as const;
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

type Json = Record<string, unknown>;

function fieldConfig(p: PanelSpec): Json {
  const defaults: Json = { unit: p.unit, color: { mode: p.kind === 'stat' ? 'thresholds' : 'palette-classic' } };
  if (p.kind === 'timeseries') {
    defaults.custom = {
      drawStyle: p.bars ? 'bars' : 'line',
      lineWidth: 1,
      fillOpacity: p.stacked || p.bars ? 60 : 10,
      showPoints: 'never',
      spanNulls: false,
      stacking: { mode: p.stacked ? 'normal' : 'none', group: 'A' },
    };
  }
  defaults.thresholds = { mode: 'absolute', steps: [{ color: 'green', value: null }] };
  return { defaults, overrides: [] };
}

function options(p: PanelSpec): Json {
  if (p.kind === 'stat') {
    return {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'value_and_name',
    };
  }
  return {
    legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
    tooltip: { mode: 'multi', sort: 'desc' },
  };
}

function panel(p: PanelSpec, id: number, gridPos: Json): Json {
  return {
    id,
    type: p.kind,
    title: p.title,
    description: p.description,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: fieldConfig(p),
    options: options(p),
    targets: p.targets.map((t, i) => ({
      datasource: DATASOURCE,
      refId: String.fromCharCode(65 + i),
      expr: t.expr,
      legendFormat: t.legend,
      range: true,
      instant: false,
      editorMode: 'code',
    })),
  };
}

/** Rows one after another; panels fill each row left to right and wrap at 24 columns. */
function layout(rows: RowSpec[]): Json[] {
  const out: Json[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    out.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      if (x + p.width > 24) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      const h = PANEL_HEIGHT[p.kind];
      out.push(panel(p, id++, { h, w: p.width, x, y }));
      x += p.width;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return out;
}

function queryVariable(name: string, label: string, query: string): Json {
  return {
    name,
    label,
    type: 'query',
    datasource: DATASOURCE,
    definition: query,
    query: { query, refId: `${name}-values`, qryType: 1 },
    refresh: 2, // on time range change: jobs come and go
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: {},
    options: [],
    regex: '',
    sort: 1,
    hide: 0,
  };
}

/** Template variable queries (label_values over the series every worker exports from its start). */
export const VARIABLE_QUERIES = {
  namespace: `label_values(${WORKER.rankInfo}, namespace)`,
  [JOB_LABEL]: `label_values(${WORKER.rankInfo}{namespace=~"$namespace"}, ${JOB_LABEL})`,
} as const;

export function buildDashboard(rows: RowSpec[] = ROWS): Json {
  return {
    id: null,
    uid: DASHBOARD_UID,
    title: DASHBOARD_TITLE,
    description: 'Throughput, step time, communication vs compute, loss, memory and checkpoints of XAttnJobs, and the health of the xattn operator.',
    tags: ['xattn', 'training', 'lv-xattn'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: '',
    fiscalYearStartMonth: 0,
    links: [],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, options: [], regex: '', refresh: 1, hide: 0, includeAll: false, multi: false },
        queryVariable('namespace', 'Namespace', VARIABLE_QUERIES.namespace),
        queryVariable(JOB_LABEL, 'Job', VARIABLE_QUERIES[JOB_LABEL]),
      ],
    },
    panels: layout(rows),
  };
}

/** The committed file's text: stable key order as built, two-space indent, trailing newline. */
export function dashboardText(rows: RowSpec[] = ROWS): string {
  return `${JSON.stringify(buildDashboard(rows), null, 2)}\n`;
}
