// Bundles what strata ships, because start-up is a large share of a short command's time:
// - @strata/core as one ES module (packages/core/dist/strata-core.js), which its package exports point
//   at: Node resolves and links ES modules one by one, about 1 ms apiece, so one file beats forty.
// - the `strata` command as one CommonJS file (packages/cli/dist/strata.cjs): CommonJS also skips the
//   ES-module facades Node builds for each built-in module it imports.
// Every @strata package stays outside every other's bundle and is loaded from its own install, so a process
// holds one copy of each class (an error thrown by the core is `instanceof` the core's class, whoever
// imports it). The native addon and zstd-napi stay outside too; @strata/core loads both (package.ts).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const common = { bundle: true, platform: 'node', target: 'node20', external: ['zstd-napi'], sourcemap: 'linked', logLevel: 'warning' };

await build({
  ...common,
  entryPoints: [`${root}packages/core/src/index.ts`],
  outfile: `${root}packages/core/dist/strata-core.js`,
  format: 'esm',
});
await build({
  ...common,
  external: [...common.external, '@strata/*', 'lmdb'],
  entryPoints: [`${root}packages/snapshotter/src/index.ts`],
  outfile: `${root}packages/snapshotter/dist/strata-snapshotter.js`,
  format: 'esm',
});
await build({
  ...common,
  external: [...common.external, '@strata/*', 'lmdb'],
  entryPoints: [`${root}packages/cli/src/main.ts`],
  outfile: `${root}packages/cli/dist/strata.cjs`,
  format: 'cjs',
  // CommonJS has no import.meta: give the bundled modules this file's URL (they resolve the package from it).
  define: { 'import.meta.url': '__strataModuleUrl' },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
