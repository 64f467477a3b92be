/**
 * Where @strata/core is installed. Its native addon and its dependencies (zstd-napi) are loaded from there,
 * whichever file this code runs from: its own dist/, its sources under test, or a bundle such as the CLI's.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = '@strata/core';

/**
 * The manifest Node's `require.resolve('@strata/core/package.json')` finds from `file`, looked up the way it
 * looks: the package `file` belongs to when that is @strata/core itself, else the first
 * `node_modules/@strata/core` up from its directory; real path, symlinks resolved. Undefined where neither
 * exists (NODE_PATH, global folders: the caller asks Node then). By hand, because Node's resolver runs cold
 * at start-up: 4-5 ms against 1.5 in a fresh process, which every command and every importer pays.
 */
export function findManifest(file: string): string | undefined {
  // The package `file` is in: the nearest package.json, not looked for past a node_modules directory.
  for (let dir = dirname(file); basename(dir) !== 'node_modules'; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    let text: string;
    try {
      text = readFileSync(manifest, 'utf8');
    } catch {
      if (dirname(dir) === dir) break;
      continue;
    }
    // Only the nearest package.json decides (Node's self-reference looks no further).
    let name: unknown;
    try {
      name = (JSON.parse(text) as { name?: unknown }).name;
    } catch {
      return undefined;
    }
    if (name === PACKAGE_NAME) return realpathSync.native(manifest);
    break;
  }
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (basename(dir) !== 'node_modules') {
      const manifest = join(dir, 'node_modules', PACKAGE_NAME, 'package.json');
      if (statSync(manifest, { throwIfNoEntry: false })?.isFile()) return realpathSync.native(manifest);
    }
    if (dirname(dir) === dir) return undefined;
  }
}

const here = fileURLToPath(import.meta.url);
const manifest = findManifest(here) ?? createRequire(here).resolve(`${PACKAGE_NAME}/package.json`);

/** The package's directory. */
export const packageRoot = dirname(manifest);

/** `require` as seen from the package itself. */
export const requireFromPackage = createRequire(manifest);

/** The built native addon (`native/strata_native.c`). */
export const addonPath = join(packageRoot, 'build', 'Release', 'strata_native.node');
