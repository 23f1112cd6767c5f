import { defineConfig } from 'vitest/config';

// The cluster suite: each file starts its own etcd + kube-apiserver on loopback (see
// test/cluster/harness). Files run one at a time: the machine has two cores.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
