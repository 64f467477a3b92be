import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: {
      '@strata/core': fileURLToPath(new URL('./packages/core/src/index.ts', import.meta.url)),
      '@strata/snapshotter': fileURLToPath(new URL('./packages/snapshotter/src/index.ts', import.meta.url)),
      '@strata/images': fileURLToPath(new URL('./packages/images/src/index.ts', import.meta.url)),
      '@strata/registry': fileURLToPath(new URL('./packages/registry/src/index.ts', import.meta.url)),
      '@strata/build': fileURLToPath(new URL('./packages/build/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // In CI, a JSON report too, from which .ci/run prints a plain "N passed, N failed" closing line.
    reporters: process.env.CI === 'true' ? ['default', ['json', { outputFile: 'test-results.json' }]] : ['default'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
