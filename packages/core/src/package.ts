/**
 * Where @strata/core is installed. Its native addon and its dependencies (zstd-napi) are loaded from there,
 * whichever file this code runs from: its own dist/, its sources under test, or a bundle such as the CLI's.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const here = createRequire(import.meta.url);
const manifest = here.resolve('@strata/core/package.json');

/** The package's directory. */
export const packageRoot = dirname(manifest);

/** `require` as seen from the package itself. */
export const requireFromPackage = createRequire(manifest);

/** The built native addon (`native/strata_native.c`). */
export const addonPath = join(packageRoot, 'build', 'Release', 'strata_native.node');
