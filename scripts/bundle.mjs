// Bundles what strata ships, because start-up is a large share of a short command's time:
// - @strata/core as one ES module (packages/core/dist/strata-core.js), which its package exports point
//   at: Node resolves and links ES modules one by one, about 1 ms apiece, so one file beats forty.
// - the `strata` command as one CommonJS file (packages/cli/dist/strata-command.cjs, which dist/strata.cjs runs
//   through V8's code cache) with the libraries and commander inside: CommonJS also skips the ES-module facades Node builds for each built-in module it imports. The
//   snapshotter inside it is initialised only when a snapshot command runs (a dynamic import), so the
//   database binding costs the other commands nothing.
// Each library bundle loads the other @strata packages from their installs, and the command holds the one
// copy it carries: a process has one copy of each class either way (and instanceof holds across copies
// anyway: errors carry a shared brand). The native addon, zstd-napi and lmdb stay outside; @strata/core
// loads its addon and zstd-napi from its own install (package.ts).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

/**
 * Makes a bundle pure ASCII. esbuild escapes non-ASCII characters in strings and names, but copies the
 * comments it keeps, and regular expression literals, as they are; one `→` in a kept comment makes Node
 * decode the whole file to a two-byte string, twice the memory and about twice the time to read (2-3 ms of
 * every command). In comment lines each such character becomes `?` (`??` for a surrogate pair: columns, and
 * with them the source map, stay right); anywhere else the build stops, to be written as an escape.
 */
function asciiOnly(file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  let changed = false;
  for (let i = 0; i < lines.length; i++) {
    if (!/[^\x00-\x7f]/.test(lines[i])) continue;
    if (!/^\s*(\/\/|\/\*|\*(\s|\/|$))/.test(lines[i])) throw new Error(`${file}:${i + 1}: a non-ASCII character outside a comment; write it as an escape (\\u…) in the source`);
    lines[i] = lines[i].replace(/[^\x00-\x7f]/gu, (c) => '?'.repeat(c.length));
    changed = true;
  }
  if (changed) writeFileSync(file, lines.join('\n'));
}
const common = { bundle: true, platform: 'node', target: 'node20', external: ['zstd-napi'], sourcemap: 'linked', logLevel: 'warning' };

// The libraries as ES modules, each loading the other @strata packages (and lmdb) from their installs.
for (const [dir, file] of [
  ['core', 'strata-core.js'],
  ['snapshotter', 'strata-snapshotter.js'],
  ['images', 'strata-images.js'],
  ['registry', 'strata-registry.js'],
  ['build', 'strata-build.js'],
]) {
  await build({
    ...common,
    external: [...common.external, '@strata/*', 'lmdb', 'dockerfile-ast', '@balena/dockerignore', 'fast-glob'],
    entryPoints: [`${root}packages/${dir}/src/index.ts`],
    outfile: `${root}packages/${dir}/dist/${file}`,
    format: 'esm',
  });
  asciiOnly(`${root}packages/${dir}/dist/${file}`);
}
const commandBundle = `${root}packages/cli/dist/strata-command.cjs`;
await build({
  ...common,
  external: [...common.external, 'lmdb'],
  entryPoints: [`${root}packages/cli/src/main.ts`],
  outfile: commandBundle,
  format: 'cjs',
  // CommonJS has no import.meta: give the bundled modules this file's URL (they resolve the package from it).
  define: { 'import.meta.url': '__strataModuleUrl' },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
asciiOnly(commandBundle);
// The executable: it runs the command bundle through V8's code cache (launcher.ts), which it keys by the
// bundle's content, as V8 itself checks only the source's length.
await build({
  ...common,
  entryPoints: [`${root}packages/cli/src/launcher.ts`],
  outfile: `${root}packages/cli/dist/strata.cjs`,
  format: 'cjs',
  define: {
    'import.meta.url': '__strataModuleUrl',
    STRATA_COMMAND_BUNDLE_ID: JSON.stringify(createHash('sha256').update(readFileSync(commandBundle)).digest('hex').slice(0, 32)),
  },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
asciiOnly(`${root}packages/cli/dist/strata.cjs`);
