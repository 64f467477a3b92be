/**
 * Built-in modules loaded on first use, not at import: each costs a process milliseconds to load, and most
 * strata jobs never touch them. node:crypto (forty of Node's modules, streams among them) serves only a
 * tarball index's temporary name: layer jobs hash through the addon, on its threads or on this one.
 * node:zlib (~3 ms) serves only gzip layers. node:stream (1.2-1.5 ms) serves only compressed blobs and
 * streams a caller hands in: a command's layer job reads and writes files through the addon.
 */
let cryptoModule: typeof import('node:crypto') | undefined;
export const crypto = (): typeof import('node:crypto') => (cryptoModule ??= process.getBuiltinModule('node:crypto'));

let zlibModule: typeof import('node:zlib') | undefined;
export const zlib = (): typeof import('node:zlib') => (zlibModule ??= process.getBuiltinModule('node:zlib'));

let streamModule: typeof import('node:stream') | undefined;
export const stream = (): typeof import('node:stream') => (streamModule ??= process.getBuiltinModule('node:stream'));
