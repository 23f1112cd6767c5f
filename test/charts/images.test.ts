// The container images cannot be built here (no Docker engine), so what can be checked without one
// is: the tag scheme agrees with the chart and the CRD, every file the Dockerfiles copy exists and
// is not excluded from the build context, and the images run what the chart and the operator ask.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { WORKER_COMMAND } from '../../operator/build/pod.js';
import { CHART, REPO } from './helm.js';

const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');
const pkgVersion: string = JSON.parse(read('package.json')).version;
const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8'));
const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
const crdImage: string = parse(read('crds/xattn.io_xattnjobs.yaml')).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.image.default;

/** Dockerfile instructions with line continuations joined. */
function instructions(file: string): string[] {
  return read(file)
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

const ignored = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('image tags', () => {
  const tags = execFileSync('bash', [path.join(REPO, 'scripts/build-images.sh'), '--print-tags'], { encoding: 'utf8', env: { ...process.env, REGISTRY: 'registry.example.com/ml' } })
    .trim()
    .split('\n');
  const defaults = execFileSync('bash', [path.join(REPO, 'scripts/build-images.sh'), '--print-tags'], { encoding: 'utf8', env: { ...process.env, REGISTRY: 'ghcr.io/xattn' } })
    .trim()
    .split('\n');

  it('follow <registry>/{operator,runtime}:<package version>[-dev.<commit>], plus a -cudaX.Y runtime alias', () => {
    const v = pkgVersion.replace(/\./g, '\\.');
    expect(defaults).toHaveLength(3);
    expect(defaults[0]).toMatch(new RegExp(`^ghcr\\.io/xattn/operator:${v}(-dev\\.[0-9a-f]{8}(\\.dirty)?)?$`));
    expect(defaults[1]).toMatch(new RegExp(`^ghcr\\.io/xattn/runtime:${v}(-dev\\.[0-9a-f]{8}(\\.dirty)?)?$`));
    expect(defaults[2]).toBe(`${defaults[1]}-cuda12.8`);
    expect(tags[0]).toBe(defaults[0]!.replace('ghcr.io/xattn', 'registry.example.com/ml')); // REGISTRY is honoured
  });

  it('agree with the chart (operator image, appVersion) and the CRD (default runtime image)', () => {
    expect(chart.appVersion).toBe(pkgVersion);
    expect(values.image.repository).toBe(defaults[0]!.split(':')[0]);
    expect(crdImage).toBe(`${defaults[1]!.split(':')[0]}:${pkgVersion}`);
  });
});

describe.each(['Dockerfile.operator', 'Dockerfile.runtime'])('%s', (file) => {
  const lines = instructions(file);

  it('copies only files that exist and that .dockerignore keeps in the build context', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from='))) {
      const sources = l.split(/\s+/).slice(1, -1);
      for (const src of sources) {
        expect(() => readFileSync(path.join(REPO, src)), `${file}: ${src}`).not.toThrow(/ENOENT/);
        expect(ignored.some((pat) => src === pat || src.startsWith(`${pat}/`)), `${file}: ${src} is ignored`).toBe(false);
      }
    }
  });

  it('bundles the CLI and ships the CRD beside package.json (how crds/root.ts finds the project root)', () => {
    expect(lines).toContainEqual(expect.stringMatching(/node scripts\/bundle\.mjs/));
    expect(lines).toContainEqual(expect.stringMatching(/COPY --from=build \/app\/package\.json/));
    expect(lines).toContainEqual(expect.stringMatching(/COPY --from=build \/app\/crds\/xattn\.io_xattnjobs\.yaml/));
  });
});

describe('Dockerfile.operator', () => {
  const lines = instructions('Dockerfile.operator');
  it('runs as the non-root user the chart expects, with node and the bundle as entrypoint', () => {
    const user = lines.filter((l) => l.startsWith('USER ')).at(-1)!;
    expect(user).toBe(`USER ${values.podSecurityContext.runAsUser}:${values.podSecurityContext.runAsGroup}`);
    expect(lines.filter((l) => l.startsWith('FROM ')).at(-1)).toMatch(/distroless\/nodejs.*:nonroot$/);
    expect(lines).toContain('ENTRYPOINT ["/nodejs/bin/node", "/app/dist/xattn.mjs"]');
  });
});

describe('Dockerfile.runtime', () => {
  const lines = instructions('Dockerfile.runtime');
  it('builds the addon with CUDA on a CUDA devel image and runs on a CUDA runtime image with NCCL', () => {
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms.some((l) => /nvidia\/cuda:.*-devel-.* AS build$/.test(l))).toBe(true);
    expect(froms.at(-1)).toMatch(/^FROM nvidia\/cuda:\$\{CUDA_VERSION\}-runtime-/);
    expect(lines).toContainEqual(expect.stringMatching(/cmake-js compile .*--CDXATTN_CUDA=ON/));
    expect(lines).toContainEqual(expect.stringMatching(/libnccl2/));
    expect(lines).toContainEqual(expect.stringMatching(/^ARG NODE_VERSION=22$/));
  });

  it('puts the command the operator gives worker pods on PATH', () => {
    expect(WORKER_COMMAND[0]).toBe('xattn');
    expect(lines).toContainEqual(expect.stringMatching(/ln -s \/app\/bin\/xattn\.js \/usr\/local\/bin\/xattn/));
  });
});
