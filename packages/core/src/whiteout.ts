/**
 * The two encodings of deletion, and every test for them: strata has exactly one of each.
 *
 * - OCI layers (and host directories in OCI form): a deleted path is an empty entry named `.wh.<name>`; a
 *   directory that hides everything below it holds `.wh..wh..opq`; other `.wh..wh.` names are aufs
 *   bookkeeping, which Docker skips.
 * - overlayfs upper directories (and host directories in overlay form): a deleted path is a character device
 *   0/0; an opaque directory carries the xattr `trusted.overlay.opaque` (`user.overlay.opaque` for `userxattr`
 *   mounts) with the value `y`.
 *
 * Within one layer an entry beats a whiteout of the same path, whatever their order: a whiteout hides only
 * what is below.
 */
import { LayerFormatError } from './errors.js';
import { S_IFCHR, S_IFMT } from './mode.js';
import { baseName, childPath, lastSlash, parentOf } from './path.js';
import { quote } from './quote.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** Prefix of aufs bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`, `.wh..wh.orph`). */
const AUFS_META_PREFIX = '.wh..wh.';
const AUFS_META = new Set(['.wh..wh.plnk', '.wh..wh.aufs', '.wh..wh.orph']);

/** Which xattr namespace marks opaque directories in overlay form. */
export type OverlayXattrNamespace = 'trusted' | 'user';

/** The xattr that marks an overlayfs directory opaque in the given namespace. */
export function opaqueXattr(namespace: OverlayXattrNamespace): string {
  return `${namespace}.overlay.opaque`;
}

/** The value of the opaque xattr that means "opaque". */
export const OPAQUE_VALUE: Uint8Array = Uint8Array.of(0x79); // "y"

/** True when an opaque xattr's value marks the directory opaque (exactly `y`, as overlayfs reads it). */
export function isOpaqueValue(value: Uint8Array | undefined): boolean {
  return value !== undefined && value.length === 1 && value[0] === 0x79;
}

/** True for xattrs the overlay filesystem owns; a layer's own entries must not carry them into a target. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** The mknod type bits, permission and device numbers of an overlay whiteout: a character device 0/0. */
export const WHITEOUT_DEVICE = { typeBits: S_IFCHR, perm: 0, major: 0, minor: 0 } as const;

/** True for an overlay whiteout: a character device 0/0 (from a host `st_mode` and device numbers). */
export function isWhiteoutDevice(mode: number, major: number, minor: number): boolean {
  return (mode & S_IFMT) === S_IFCHR && major === 0 && minor === 0;
}

/** The same test for layer metadata (a `NodeStat` or an `Entry`). */
export function isWhiteoutEntry(entry: { readonly type: string; readonly devmajor?: number | undefined; readonly devminor?: number | undefined }): boolean {
  return entry.type === 'char' && (entry.devmajor ?? 0) === 0 && (entry.devminor ?? 0) === 0;
}

/** The same test for a Node `fs.Stats` (whose `rdev` is 0 exactly for device 0/0). */
export function isWhiteoutStats(stats: { readonly mode: number; readonly rdev: number }): boolean {
  return (stats.mode & S_IFMT) === S_IFCHR && stats.rdev === 0;
}

/** How a tar entry name (or a name in an OCI-form directory) reads as an OCI whiteout. */
export type WhiteoutKind =
  | { readonly kind: 'none' }
  | { readonly kind: 'whiteout'; readonly target: string }
  | { readonly kind: 'opaque'; readonly dir: string }
  | { readonly kind: 'aufs-meta' };

const NONE: WhiteoutKind = Object.freeze({ kind: 'none' });
const AUFS: WhiteoutKind = Object.freeze({ kind: 'aufs-meta' });

/**
 * Classifies a clean layer path. Throws LAYER_FORMAT for a whiteout that names nothing (`.wh.`), the
 * directory itself (`.wh..`) or its parent (`.wh...`), or an unknown `.wh..wh.` marker.
 */
export function classifyWhiteout(path: string): WhiteoutKind {
  if (!path.startsWith(WHITEOUT_PREFIX, lastSlash(path) + 1)) return NONE; // nearly every entry: no slice made
  const base = baseName(path);
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir: parentOf(path) };
  if (AUFS_META.has(base)) return AUFS;
  if (base.startsWith(AUFS_META_PREFIX)) throw new LayerFormatError(`unknown whiteout marker ${quote(base)}`, { path });
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..') throw new LayerFormatError(`whiteout names no entry: ${quote(base)}`, { path });
  return { kind: 'whiteout', target: childPath(parentOf(path), name) };
}

/** The OCI whiteout entry path that deletes `path`. */
export function whiteoutPathFor(path: string): string {
  return childPath(parentOf(path), WHITEOUT_PREFIX + baseName(path));
}

/** The OCI opaque-marker entry path for directory `dir`. */
export function opaqueMarkerPathFor(dir: string): string {
  return childPath(dir, OPAQUE_MARKER);
}
