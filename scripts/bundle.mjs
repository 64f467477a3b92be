// Bundles what strata ships, because start-up is a large share of a short command's time:
// - @strata/core as one ES module (packages/core/dist/strata-core.js), which its package exports point
//   at: Node resolves and links ES modules one by one, about 1 ms apiece, so one file beats forty.
// - the `strata` command as two CommonJS files, their module wrappers written into them, which
//   dist/strata.cjs runs through V8's code cache: packages/cli/dist/strata-command.cjs, the command with
//   @strata/core and commander inside, and packages/cli/dist/strata-root.cjs, the libraries of the commands
//   that open a root (images, snapshotter, registry, build, lmdb's JavaScript), loaded only when a command
//   imports one of them. CommonJS also skips the ES-module facades Node builds for each built-in module it
//   imports.
// Each library bundle loads the other @strata packages from their installs, and the command holds the one
// copy it carries: a process has one copy of each class either way (and instanceof holds across copies
// anyway: errors carry a shared brand). The native addon and zstd-napi stay outside, and lmdb in the libraries;
// @strata/core loads its addon and zstd-napi from its own install (package.ts), the command lmdb's binding
// from lmdb's (packages/cli/src/lmdb-binding.ts).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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
    external: [...common.external, '@strata/*', 'lmdb', 'dockerfile-ast', '@balena/dockerignore'],
    entryPoints: [`${root}packages/${dir}/src/index.ts`],
    outfile: `${root}packages/${dir}/dist/${file}`,
    format: 'esm',
  });
  asciiOnly(`${root}packages/${dir}/dist/${file}`);
}
const commandBundle = `${root}packages/cli/dist/strata-command.cjs`;
const lmdbEntry = createRequire(`${root}packages/cli/package.json`).resolve('lmdb');
const lmdbVersion = JSON.parse(readFileSync(join(dirname(dirname(lmdbEntry)), 'package.json'), 'utf8')).version;
/**
 * lmdb's JavaScript goes into the root libraries' bundle (loaded from its install, resolving it and its five
 * packages cost every command that opens a root 30-40 ms, outside the code cache). Its binding comes
 * through packages/cli/src/lmdb-binding.ts instead of lmdb's loader, and msgpackr's optional native string
 * extraction stays out: it is found through the same costly loader, and the metadata records it would decode
 * are a few hundred bytes, where msgpackr's JavaScript is as fast.
 */
const lmdbInBundle = {
  name: 'lmdb-in-bundle',
  setup(b) {
    // lmdb's rolled-up CommonJS build, as `require` loads it: esbuild's bundling of its ES sources hangs on the
    // first write (their import cycles evaluate in another order).
    b.onResolve({ filter: /^lmdb$/ }, () => ({ path: lmdbEntry }));
    b.onResolve({ filter: /^node-gyp-build-optional-packages$/ }, (args) => (args.importer === lmdbEntry ? { path: `${root}packages/cli/src/lmdb-binding.ts` } : undefined));
    b.onResolve({ filter: /^msgpackr-extract$/ }, (args) => (/[\\/]msgpackr[\\/]/.test(args.importer) ? { path: 'msgpackr-extract', namespace: 'strata-left-out' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'strata-left-out' }, () => ({ contents: 'throw new Error("msgpackr-extract is not in the strata command");', loader: 'js' }));
  },
};
/**
 * The command's imports of the root libraries become `require` calls the launcher answers with the exports of
 * their bundle. esbuild would leave a dynamic `import()` of an external package as it is, and a script run
 * through `vm` has no loader for it: each import goes through a module of one line that requires it instead.
 */
const rootLibraries = {
  name: 'root-libraries',
  setup(b) {
    const filter = /^@strata\/(images|snapshotter|registry|build)$/;
    b.onResolve({ filter }, (args) => (args.kind === 'require-call' ? { path: args.path, external: true } : { path: args.path, namespace: 'strata-root-library' }));
    b.onLoad({ filter: /.*/, namespace: 'strata-root-library' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};
await build({
  ...common,
  entryPoints: [`${root}packages/cli/src/main.ts`],
  outfile: commandBundle,
  format: 'cjs',
  plugins: [rootLibraries],
  // CommonJS has no import.meta: give the bundled modules this file's URL (they resolve the package from it).
  define: { 'import.meta.url': '__strataModuleUrl' },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
const rootBundle = `${root}packages/cli/dist/strata-root.cjs`;
await build({
  ...common,
  entryPoints: [`${root}packages/cli/src/root-libraries.cjs`],
  outfile: rootBundle,
  format: 'cjs',
  // The launcher hands this bundle the command bundle's @strata/core.
  external: [...common.external, '@strata/core'],
  plugins: [lmdbInBundle],
  define: { 'import.meta.url': '__strataModuleUrl', STRATA_BUNDLED_LMDB_VERSION: JSON.stringify(lmdbVersion) },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
/**
 * Each bundle becomes the text of the function the launcher calls, CommonJS's wrapper included (a `#!` line
 * commented out after the wrapper's head: lines stay where the source map has them). The launcher then
 * hands the file's text to V8 as it is read: wrapping it at each start made two more copies of a 1.4 MB
 * string in memory the process touched for the first time (`--version` 128 -> 117 ms, medians of 45
 * alternating runs). They are no modules any more: only the launcher runs them.
 */
for (const file of [commandBundle, rootBundle]) {
  asciiOnly(file);
  const text = readFileSync(file, 'latin1');
  const body = text.startsWith('#!') ? `//${text.slice(2)}` : text;
  writeFileSync(file, `(function (exports, require, module, __filename, __dirname) {${body}\n})`, 'latin1');
}
// The executable: it runs the bundles through V8's code cache (launcher.ts), which it keys by their
// content, as V8 itself checks only a source's length.
await build({
  ...common,
  entryPoints: [`${root}packages/cli/src/launcher.ts`],
  outfile: `${root}packages/cli/dist/strata.cjs`,
  format: 'cjs',
  define: {
    'import.meta.url': '__strataModuleUrl',
    STRATA_COMMAND_BUNDLE_ID: JSON.stringify(createHash('sha256').update(readFileSync(commandBundle)).update(readFileSync(rootBundle)).digest('hex').slice(0, 32)),
  },
  banner: { js: 'const __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
asciiOnly(`${root}packages/cli/dist/strata.cjs`);
