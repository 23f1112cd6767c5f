import { defineConfig } from 'vitest/config';

// The chart and end-to-end suites: the real helm (scripts/helm-assets.sh), a real kube-apiserver +
// etcd (scripts/kube-assets.sh) and a real Prometheus (scripts/prometheus-assets.sh). Files run one
// at a time: the machine has two cores.
export default defineConfig({
  test: {
    include: ['test/charts/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
