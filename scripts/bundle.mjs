// Bundles @strata/core into one ES module (dist/strata-core.js), which its package exports point at.
// Node resolves and links each ES module separately, about 1 ms apiece: one file instead of forty takes
// some 40 ms off every `strata` command's start-up and off every embedder's first import.
// The native addon and zstd-napi stay outside: both are loaded with createRequire, relative to the bundle.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const core = fileURLToPath(new URL('../packages/core/', import.meta.url));
await build({
  entryPoints: [`${core}src/index.ts`],
  outfile: `${core}dist/strata-core.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['zstd-napi'],
  sourcemap: 'linked',
  logLevel: 'warning',
});
