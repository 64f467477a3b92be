/**
 * Layer-relative POSIX paths. A clean path has no leading `/` or `./`, no empty, `.` or `..` components
 * and no trailing `/`; the layer root is `.`.
 */
import { UnsafePathError } from './errors.js';
import { quote } from './quote.js';
import { encodeName } from './name-bytes.js';

/** The clean path naming the layer root. */
export const ROOT = '.';

/**
 * Cleans a tar entry name into a layer-relative path.
 * Throws UNSAFE_PATH for absolute names and for any `..` component: a layer names its own tree only.
 */
export function cleanLayerPath(name: string): string {
  if (isClean(name)) return name;
  if (name.length > 1 && name.charCodeAt(name.length - 1) === 0x2f && isClean(name.slice(0, -1))) return name.slice(0, -1);
  if (name.startsWith('/')) throw new UnsafePathError(`absolute path in layer: ${quote(name)}`, { path: name });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new UnsafePathError(`'..' in layer path: ${quote(name)}`, { path: name });
    parts.push(part);
  }
  return parts.length === 0 ? ROOT : parts.join('/');
}

/**
 * A tar entry's name, or a hardlink's target, as a layer path: as `cleanLayerPath`, but a leading `/` starts
 * at the layer root, as containerd, Docker and GNU tar read it (distroless, kaniko and Paketo layers spell
 * paths so: `/usr/bin/python`, `/`). `..` anywhere stays UNSAFE_PATH.
 */
export function cleanEntryName(name: string): string {
  if (name.charCodeAt(0) !== 0x2f) return cleanLayerPath(name);
  let start = 1;
  while (name.charCodeAt(start) === 0x2f) start++;
  return cleanLayerPath(name.slice(start));
}

/** True when `name` is already clean and not the root (no empty, `.` or `..` components): most tar names are. */
function isClean(name: string): boolean {
  const n = name.length;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && name.charCodeAt(i) !== 0x2f) continue;
    const length = i - start;
    if (length === 0) return false;
    if (name.charCodeAt(start) === 0x2e && (length === 1 || (length === 2 && name.charCodeAt(start + 1) === 0x2e))) return false;
    start = i + 1;
  }
  return true;
}

/**
 * Index of the last `/` in `path`, or -1. A loop V8 compiles inline: `lastIndexOf` is a call into its
 * runtime, and an apply asks this several times an entry.
 */
export function lastSlash(path: string): number {
  let i = path.length - 1;
  while (i >= 0 && path.charCodeAt(i) !== 0x2f) i--;
  return i;
}

/**
 * The last path `parentOf` was asked about, and its answer. An apply asks for the parent of one entry's path
 * several times in a row (to place it, to reach its directory, to record it); returning the same string
 * each time, not a new slice, lets every map keyed by paths reuse the hash V8 stored in it.
 */
let lastChild: string | undefined;
let lastParent = '';

/** Parent of a clean path (`.` for top-level names and for the root itself). */
export function parentOf(path: string): string {
  if (path === lastChild) return lastParent;
  const slash = lastSlash(path);
  const parent = slash < 0 ? ROOT : path.slice(0, slash);
  lastChild = path;
  lastParent = parent;
  return parent;
}

/** Last component of a clean path. */
export function baseName(path: string): string {
  return path.slice(lastSlash(path) + 1);
}

/** Joins a clean directory path and a single name. */
export function childPath(dir: string, name: string): string {
  return dir === ROOT ? name : `${dir}/${name}`;
}

/** True when `path` is `dir` itself or lies beneath it (both clean). */
export function isWithin(path: string, dir: string): boolean {
  if (dir === ROOT) return true;
  return path === dir || (path.startsWith(dir) && path.charCodeAt(dir.length) === 0x2f);
}

/**
 * Byte-wise comparison of two names as their bytes (UTF-8, surrogate escapes as the bytes they stand for: see
 * `name-bytes.ts`), the order tar writers use for siblings (not locale order).
 */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 order equals byte order between code units that are not surrogates; from a surrogate on (an
    // astral character, or an escaped byte), the bytes decide, from the character's start.
    if ((x < 0xd800 || x > 0xdfff) && (y < 0xd800 || y > 0xdfff)) return x - y;
    const from = i > 0 && (a.charCodeAt(i - 1) & 0xfc00) === 0xd800 ? i - 1 : i;
    return Buffer.compare(encodeName(a.slice(from)), encodeName(b.slice(from)));
  }
  return a.length - b.length;
}

/**
 * Tar order of two clean paths: a parent before its children, siblings in byte order, a directory's whole
 * subtree before its next sibling.
 */
export function compareTarOrder(a: string, b: string): number {
  if (a === b) return 0;
  if (a === ROOT) return -1;
  if (b === ROOT) return 1;
  const as = a.split('/');
  const bs = b.split('/');
  const n = Math.min(as.length, bs.length);
  for (let i = 0; i < n; i++) {
    const c = compareNames(as[i]!, bs[i]!);
    if (c !== 0) return c;
  }
  return as.length - bs.length;
}
