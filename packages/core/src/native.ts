/**
 * The syscalls Node lacks: mknod and nanosecond utimensat come from our addon (`native/strata_native.c`),
 * extended attributes from @napi-rs/xattr (its calls use the l* variants, so they never follow a symlink).
 */
import { createRequire } from 'node:module';
import { getAttributeSync, listAttributesSync, removeAttributeSync, setAttributeSync } from '@napi-rs/xattr';

interface StrataNative {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lutimens(path: string, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
}

const require = createRequire(import.meta.url);
const addon = require('../build/Release/strata_native.node') as StrataNative;

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** Creates a device node or fifo; throws Node-shaped errno errors. */
export function mknod(path: string, typeBits: number, perm: number, major = 0, minor = 0): void {
  addon.mknod(path, typeBits | perm, major, minor);
}

/** Sets atime and mtime of `path` itself (never a symlink's target) with nanosecond precision. */
export function lutimens(path: string, atime: { sec: number; nsec: number }, mtime: { sec: number; nsec: number }): void {
  addon.lutimens(path, atime.sec, atime.nsec, mtime.sec, mtime.nsec);
}

function errnoOf(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  if (/No data available|ENODATA/.test(message)) return 'ENODATA';
  if (/Operation not supported|ENOTSUP|EOPNOTSUPP/.test(message)) return 'ENOTSUP';
  if (/Operation not permitted|EPERM/.test(message)) return 'EPERM';
  if (/No such file|ENOENT/.test(message)) return 'ENOENT';
  if (/Permission denied|EACCES/.test(message)) return 'EACCES';
  return undefined;
}

function rethrow(error: unknown, syscall: string, path: string): never {
  const wrapped: NodeJS.ErrnoException = new Error(`${syscall} '${path}': ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
  const code = errnoOf(error);
  if (code !== undefined) wrapped.code = code;
  wrapped.syscall = syscall;
  wrapped.path = path;
  throw wrapped;
}

/**
 * All extended attributes of `path` (not following symlinks), names sorted, values as raw bytes.
 * A filesystem without xattr support yields an empty map.
 */
export function readXattrs(path: string): Map<string, Uint8Array> {
  let names: string[];
  try {
    names = listAttributesSync(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOTSUP') return new Map();
    rethrow(error, 'llistxattr', path);
  }
  const result = new Map<string, Uint8Array>();
  if (names.length === 0) return result;
  names.sort();
  for (const name of names) {
    const value = getAttributeSync(path, name);
    if (value !== null) result.set(name, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  return result;
}

/** One xattr of `path` (not following symlinks), or undefined when absent. */
export function getXattr(path: string, name: string): Uint8Array | undefined {
  try {
    const value = getAttributeSync(path, name);
    return value === null ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  } catch (error) {
    if (errnoOf(error) === 'ENODATA' || errnoOf(error) === 'ENOTSUP') return undefined;
    rethrow(error, 'lgetxattr', path);
  }
}

/** Sets one xattr on `path` itself; throws Node-shaped errors (`EPERM`, `ENOTSUP`, …). */
export function setXattr(path: string, name: string, value: Uint8Array): void {
  try {
    setAttributeSync(path, name, value);
  } catch (error) {
    rethrow(error, 'lsetxattr', path);
  }
}

/** Removes one xattr from `path` itself; absent is not an error. */
export function removeXattr(path: string, name: string): void {
  try {
    removeAttributeSync(path, name);
  } catch (error) {
    if (errnoOf(error) === 'ENODATA') return;
    rethrow(error, 'lremovexattr', path);
  }
}
