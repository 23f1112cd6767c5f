// Validates XAttnJob manifests against the CRD's own schema (plus its CEL rules, mirrored here),
// filling defaults the way the API server does. Used at the edges: xattn run/validate and tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { projectRoot } from './root.js';
import { API_VERSION, KIND, worldSize, type XAttnJob, type XAttnJobSpec } from './types.js';

export const CRD_PATH = path.join(projectRoot(), 'crds/xattn.io_xattnjobs.yaml');

export class ManifestError extends Error {
  readonly code = 'XATTN_E_MANIFEST';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(problems.length ? `${message}:\n  - ${problems.join('\n  - ')}` : message);
  }
}

let validator: ValidateFunction | undefined;

export function loadCrd(): Record<string, any> {
  return parseAllDocuments(readFileSync(CRD_PATH, 'utf8'))[0]!.toJS();
}

function specValidator(): ValidateFunction {
  if (validator) return validator;
  const schema = loadCrd().spec.versions[0].schema.openAPIV3Schema;
  const ajv = new Ajv({ useDefaults: true, strict: false, allErrors: true, validateFormats: false });
  validator = ajv.compile(schema);
  return validator;
}

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : '(root)';
  if (e.keyword === 'enum') return `${where} must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field '${e.params.additionalProperty}'`;
  return `${where} ${e.message}`;
}

/** Longest job name: worker pods are <name>-worker-<index> and must stay a 63-character DNS label. */
export const MAX_JOB_NAME = 51;
const JOB_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const MAX_WORLD_SIZE = 8192;

export function jobNameProblem(name: unknown): string | undefined {
  if (typeof name === 'string' && JOB_NAME.test(name) && name.length <= MAX_JOB_NAME) return undefined;
  return `metadata.name must start with a lowercase letter, hold only lowercase letters, digits and '-', and be at most ${MAX_JOB_NAME} characters (worker pods are named <name>-worker-<index>)`;
}

/** The CEL rules of the CRD that apply on create, as plain checks (transition rules apply only on update). */
export function celProblems(spec: XAttnJobSpec): string[] {
  const p: string[] = [];
  const world = worldSize(spec);
  if (world < 1 || world > MAX_WORLD_SIZE)
    p.push(`world size (workers × gpusPerWorker) must be between 1 and ${MAX_WORLD_SIZE}`);
  if (spec.workload.visualTokens < world || spec.workload.textTokens < world)
    p.push('workload.textTokens and workload.visualTokens must each be at least the world size (every rank holds a shard)');
  if (spec.metrics.port === spec.networking.masterPort) p.push('metrics.port must differ from networking.masterPort');
  if (Object.keys(spec.networking.ncclEnv ?? {}).some((k) => !k.startsWith('NCCL_') && !k.startsWith('TORCH_NCCL_')))
    p.push('networking.ncclEnv keys must start with NCCL_ or TORCH_NCCL_');
  const r = spec.resources;
  if (r && ('nvidia.com/gpu' in (r.requests ?? {}) || 'nvidia.com/gpu' in (r.limits ?? {})))
    p.push('set GPUs with spec.gpusPerWorker, not resources nvidia.com/gpu');
  const m = spec.model;
  if (m.heads !== undefined && m.kvHeads !== undefined && m.heads % m.kvHeads !== 0)
    p.push('model.heads must be divisible by model.kvHeads (each KV head serves a whole group of query heads)');
  if (!(spec.workload.learningRate > 0)) p.push('workload.learningRate must be greater than 0');
  if (spec.workload.data.source === 'safetensors' && !spec.workload.data.path)
    p.push('workload.data.path is required when workload.data.source is safetensors');
  if (spec.scheduling.gang === 'kueue' && !spec.scheduling.queueName)
    p.push('scheduling.queueName is required when scheduling.gang is kueue');
  return p;
}

const stable = (v: unknown) => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));

/** The CRD's transition rules: what an update may not change. */
export function immutableFieldProblems(before: XAttnJobSpec, after: XAttnJobSpec): string[] {
  const p: string[] = [];
  if (before.workers !== after.workers || before.gpusPerWorker !== after.gpusPerWorker)
    p.push('workers and gpusPerWorker are immutable; create a new XAttnJob to resize');
  if ((['model', 'workload', 'attention'] as const).some((k) => stable(before[k]) !== stable(after[k])))
    p.push('model, workload and attention are immutable after creation');
  return p;
}

/** Checks one parsed object, returns it with defaults applied, or throws ManifestError. */
export function validateXAttnJob(doc: unknown, source = 'manifest'): XAttnJob {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ManifestError(`${source} is not a YAML mapping`);
  const obj = structuredClone(doc) as Record<string, any>;
  if (obj.apiVersion !== API_VERSION || obj.kind !== KIND)
    throw new ManifestError(
      `${source} must have apiVersion: ${API_VERSION} and kind: ${KIND} (got ${obj.apiVersion ?? '?'} / ${obj.kind ?? '?'})`,
    );
  const nameProblem = jobNameProblem(obj.metadata?.name);
  if (nameProblem) throw new ManifestError(`${source}: ${nameProblem}`);
  const validate = specValidator();
  if (!validate(obj)) throw new ManifestError(`${source} is invalid`, (validate.errors ?? []).map(describe));
  const cel = celProblems(obj.spec as XAttnJobSpec);
  if (cel.length) throw new ManifestError(`${source} is invalid`, cel);
  return obj as XAttnJob;
}

/** Parses YAML text holding exactly one XAttnJob. */
export function parseXAttnJob(text: string, source = 'manifest'): XAttnJob {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs) || docs.length === 0) throw new ManifestError(`${source} is empty`);
  const errs = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errs.length) throw new ManifestError(`${source} is not valid YAML`, errs);
  const jobs = docs.map((d) => d.toJS()).filter((d) => d !== null);
  if (jobs.length !== 1) throw new ManifestError(`${source} must hold exactly one XAttnJob, found ${jobs.length} documents`);
  return validateXAttnJob(jobs[0], source);
}

export function readXAttnJob(file: string): XAttnJob {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ManifestError(`cannot read manifest ${file}: ${(e as Error).message}`);
  }
  return parseXAttnJob(text, file);
}
