// The real helm (built by scripts/helm-assets.sh) driven from tests: find it, run it, and parse
// what `helm template` renders. A missing helm is an error that says how to get it, never a skip.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The chart under test; XATTN_TEST_CHART points the suites at a modified copy (e.g. to check that a test catches a change). */
export const CHART = process.env.XATTN_TEST_CHART ?? path.join(REPO, 'charts/xattn-operator');
export const VALUES_DIR = path.join(REPO, 'test/charts/values');
/** Kubernetes version of the test API server (scripts/kube-assets.sh), for .Capabilities. */
export const KUBE_VERSION = '1.34.4';
export const MONITORING_API = 'monitoring.coreos.com/v1';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: any };
  [k: string]: any;
}

export function findHelm(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XATTN_HELM_CACHE ?? path.join(os.homedir(), '.cache', 'xattn', 'helm');
  const candidates = [env.XATTN_HELM, path.join(cache, 'current', 'helm')].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next candidate
    }
  }
  throw new Error(`CHART TESTS CANNOT RUN: no helm binary (looked in ${candidates.join(', ')}). Build it once with: bash scripts/helm-assets.sh`);
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): Promise<HelmResult> {
  const bin = findHelm();
  // A private HOME-like config so the developer's helm repos and plugins never leak in.
  const scratch = path.join(os.tmpdir(), `xattn-helm-${process.pid}`);
  const env = { ...process.env, HELM_CACHE_HOME: path.join(scratch, 'cache'), HELM_CONFIG_HOME: path.join(scratch, 'config'), HELM_DATA_HOME: path.join(scratch, 'data') };
  return new Promise((resolve) => {
    execFile(bin, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface TemplateOptions {
  release?: string;
  namespace?: string;
  /** Values files (names under test/charts/values/ or absolute paths). */
  values?: string[];
  set?: string[];
  /** Pretend the cluster serves the Prometheus Operator API. */
  monitoringApi?: boolean;
}

export function templateArgs(o: TemplateOptions = {}): string[] {
  const args = ['template', o.release ?? 'xattn', CHART, '--namespace', o.namespace ?? 'xattn-system', '--kube-version', KUBE_VERSION];
  for (const v of o.values ?? []) args.push('--values', path.isAbsolute(v) ? v : path.join(VALUES_DIR, v));
  for (const s of o.set ?? []) args.push('--set', s);
  if (o.monitoringApi) args.push('--api-versions', MONITORING_API);
  return args;
}

/** Renders the chart; throws with helm's message when it fails. */
export async function renderChart(o: TemplateOptions = {}): Promise<K8sObject[]> {
  const r = await helm(templateArgs(o));
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const obj = doc.toJS();
    if (obj) out.push(obj as K8sObject);
  }
  return out;
}

export function findObject(objs: K8sObject[], kind: string, name?: string): K8sObject {
  const hit = objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!hit) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among: ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return hit;
}

export const kinds = (objs: K8sObject[]): string[] => objs.map((o) => o.kind).sort();
