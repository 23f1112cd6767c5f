// helm lint on every values file, and values.schema.json doing its job: a misspelt or out-of-range
// value fails the install (here: helm template and helm lint) with a message naming it.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CHART, VALUES_DIR, helm, templateArgs } from './helm.js';

const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
const defaults = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));

describe('helm lint --strict', () => {
  const files = ['', ...readdirSync(VALUES_DIR).filter((f) => f.endsWith('.yaml'))];
  it.each(files)('passes with %s', async (file) => {
    const args = ['lint', CHART, '--strict', '--namespace', 'xattn-system'];
    if (file) args.push('--values', path.join(VALUES_DIR, file));
    const r = await helm(args);
    expect(r.stdout + r.stderr).toContain('0 chart(s) failed');
    expect(r.code).toBe(0);
  });
});

describe('helm package', () => {
  it('ships the templates, the schema, the dashboard and the CRD copy, but not the generator', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'xattn-package-'));
    const r = await helm(['package', CHART, '--destination', dir]);
    expect(r.code, r.stderr).toBe(0);
    const tgz = path.join(dir, readdirSync(dir)[0]!);
    const files = execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
    expect(files).toEqual(expect.arrayContaining(['xattn-operator/values.schema.json', 'xattn-operator/dashboards/xattn.json', 'xattn-operator/files/crds/xattn.io_xattnjobs.yaml', 'xattn-operator/templates/NOTES.txt']));
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
  });
});

describe('values.schema.json', () => {
  const rejected = async (set: string[]) => {
    const r = await helm(templateArgs({ set }));
    expect(r.code).not.toBe(0);
    return r.stderr;
  };

  it('is draft-07 and closes every object it describes (additionalProperties: false)', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    const open: string[] = [];
    const walk = (node: any, at: string) => {
      if (node?.type === 'object' && node.properties) {
        if (node.additionalProperties !== false) open.push(at || '(root)');
        for (const [k, v] of Object.entries(node.properties)) walk(v, `${at}.${k}`);
      }
    };
    walk(schema, '');
    expect(open).toEqual([]);
  });

  it('describes every key of values.yaml (so the defaults pass it)', () => {
    const missing: string[] = [];
    const walk = (values: any, node: any, at: string) => {
      if (!values || typeof values !== 'object' || Array.isArray(values) || !node?.properties) return;
      for (const [k, v] of Object.entries(values)) {
        if (!(k in node.properties)) missing.push(`${at}${k}`);
        else walk(v, node.properties[k], `${at}${k}.`);
      }
    };
    walk(defaults, schema, '');
    expect(missing).toEqual([]);
  });

  it('rejects a misspelt top-level key', async () => {
    expect(await rejected(['replicas=2'])).toMatch(/additional properties 'replicas' not allowed/i);
  });

  it('rejects a misspelt nested key', async () => {
    expect(await rejected(['operator.concurency=8'])).toMatch(/additional properties 'concurency' not allowed/i);
    expect(await rejected(['metrics.serviceMonitor.enable=true'])).toMatch(/additional properties 'enable' not allowed/i);
  });

  it('rejects values of the wrong type or outside their set', async () => {
    expect(await rejected(['operator.logLevel=verbose'])).toMatch(/logLevel/);
    expect(await rejected(['metrics.port=70000'])).toMatch(/port/);
    expect(await rejected(['metrics.serviceMonitor.interval=30'])).toMatch(/interval/);
    expect(await rejected(['operator.watchNamespace=Team_A'])).toMatch(/watchNamespace/);
  });

  it('rejects a typo in a values file, and helm lint fails on it too', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'xattn-values-'));
    const file = path.join(dir, 'typo.yaml');
    writeFileSync(file, 'grafanaDashboard:\n  enabled: true\n  lables: {grafana_dashboard: "1"}\n');
    const t = await helm(templateArgs({ values: [file] }));
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/additional properties 'lables' not allowed/i);
    const l = await helm(['lint', CHART, '--values', file]);
    expect(l.code).not.toBe(0);
  });
});

describe('templates', () => {
  it('reference only values that values.yaml defines', () => {
    const dir = path.join(CHART, 'templates');
    const unknown: string[] = [];
    for (const f of readdirSync(dir)) {
      const text = readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)) {
        let node: any = defaults;
        for (const key of m[1]!.split('.')) {
          if (node === null || typeof node !== 'object' || !(key in node)) {
            unknown.push(`${f}: .Values.${m[1]}`);
            break;
          }
          node = node[key];
        }
      }
    }
    expect(unknown).toEqual([]);
  });
});
