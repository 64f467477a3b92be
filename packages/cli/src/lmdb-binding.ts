/**
 * lmdb's native binding, for the command's bundle of the root libraries: it carries lmdb's JavaScript (and so
 * V8's code cache covers it), and scripts/bundle.mjs hands lmdb's import of its binding loader (node-gyp-build-optional-packages)
 * this module instead. Loading lmdb from its install cost every command that opens a root 30-40 ms:
 * resolving and reading half a dozen package.json files, compiling outside the code cache, and in that
 * loader detect-libc (and with it child_process) and scans of the prebuild directories. This goes straight
 * to the file that loader picks for a glibc system, the prebuilt binding for
 * this Node's ABI in the installed lmdb's platform package, and hands everything else (a binding built from
 * source, a system with musl's loader, another platform, a missing file) to that loader itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** lmdb's version when the bundle was made (scripts/bundle.mjs): its JavaScript is in the bundle. */
declare const STRATA_BUNDLED_LMDB_VERSION: string;

/** lmdb's binding loader's signature: `dir` is where lmdb believes it lives, which in a bundle is wrong. */
export default function loadLmdbBinding(_dir: string): unknown {
  const entry = createRequire(import.meta.url).resolve('lmdb');
  const lmdbDir = dirname(dirname(entry));
  const installed = (JSON.parse(readFileSync(join(lmdbDir, 'package.json'), 'utf8')) as { version: string }).version;
  if (installed !== STRATA_BUNDLED_LMDB_VERSION) {
    // The binding has to match the JavaScript the bundle carries.
    throw new Error(`the strata command was bundled with lmdb ${STRATA_BUNDLED_LMDB_VERSION}, but lmdb ${installed} is installed: rebuild it (node scripts/bundle.mjs)`);
  }
  const lmdbRequire = createRequire(entry);
  const prebuilt = prebuiltGlibcBinding(lmdbDir);
  if (prebuilt !== undefined) {
    try {
      return lmdbRequire(prebuilt);
    } catch {
      // Not loadable here after all (a musl system whose loader is not where the check looks): lmdb's own
      // loader decides, and reports what it cannot load.
    }
  }
  return (lmdbRequire('node-gyp-build-optional-packages') as (dir: string) => unknown)(lmdbDir);
}

/**
 * The prebuilt binding lmdb's loader chooses on glibc Linux for the lmdb installed at `lmdbDir`, or
 * undefined where it may choose another.
 */
export function prebuiltGlibcBinding(lmdbDir: string): string | undefined {
  const env = process.env;
  // What the loader reads from the environment, when set, is left to it.
  if (process.platform !== 'linux' || env.LIBC !== undefined || env.LMDB_PREBUILD !== undefined || env.PREBUILDS_ONLY !== undefined) return undefined;
  if ((env.npm_config_arch ?? process.arch) !== process.arch || (env.npm_config_platform ?? process.platform) !== process.platform) return undefined;
  if (process.versions.electron !== undefined || process.versions.nw !== undefined || process.versions.bun !== undefined) return undefined;
  // Where the loader looks before the platform package (a binding built from source, prebuilds in lmdb's
  // directory or beside node), and musl's dynamic loader, which may mean a musl system.
  const before = [join(lmdbDir, 'build'), join(lmdbDir, 'prebuilds'), join(dirname(process.execPath), 'prebuilds'), `/lib/ld-musl-${muslArch()}.so.1`];
  if (before.some((path) => existsSync(path))) return undefined;
  let platformDir: string;
  try {
    platformDir = dirname(createRequire(join(lmdbDir, 'package.json')).resolve(`@lmdb/lmdb-${process.platform}-${process.arch}/package.json`));
  } catch {
    return undefined;
  }
  const file = join(platformDir, `node.abi${process.versions.modules}.glibc.node`);
  return existsSync(file) ? file : undefined;
}

/** The architecture in the name of musl's dynamic loader. */
function muslArch(): string {
  return ({ x64: 'x86_64', arm64: 'aarch64', arm: 'armhf', ia32: 'i386', ppc64: 'powerpc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
}
