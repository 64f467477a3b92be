/**
 * The two encodings of deletion. In OCI layers a deleted path is an empty entry named `.wh.<name>` and a
 * directory that hides everything below it holds `.wh..wh..opq`. In an overlayfs upper directory a deleted
 * path is a character device 0/0 and an opaque directory carries the xattr `trusted.overlay.opaque=y`
 * (`user.overlay.opaque` for `userxattr` mounts).
 */
import { LayerFormatError } from './errors.js';
import { baseName, childPath, parentOf } from './path.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** Prefix of aufs bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`) that Docker skips. */
const AUFS_META_PREFIX = '.wh..wh.';

/** Which xattr namespace marks opaque directories in overlay form. */
export type OverlayXattrNamespace = 'trusted' | 'user';

/** The xattr that marks an overlayfs directory opaque in the given namespace. */
export function opaqueXattr(namespace: OverlayXattrNamespace): string {
  return `${namespace}.overlay.opaque`;
}

/** True for xattrs the overlay filesystem owns; a layer's own entries must not carry them into a target. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** How a tar entry name reads as an OCI whiteout. */
export type WhiteoutKind =
  | { readonly kind: 'none' }
  | { readonly kind: 'whiteout'; readonly target: string }
  | { readonly kind: 'opaque'; readonly dir: string }
  | { readonly kind: 'aufs-meta' };

/**
 * Classifies a clean layer path. Throws LAYER_FORMAT for a whiteout that names nothing (`.wh.`), the
 * directory itself (`.wh..`) or its parent (`.wh...`), or an unknown `.wh..wh.` marker.
 */
export function classifyWhiteout(path: string): WhiteoutKind {
  const base = baseName(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir: parentOf(path) };
  if (base === '.wh..wh.plnk' || base === '.wh..wh.aufs' || base === '.wh..wh.orph') return { kind: 'aufs-meta' };
  if (base.startsWith(AUFS_META_PREFIX)) throw new LayerFormatError(`unknown whiteout marker ${JSON.stringify(base)}`, { path });
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..') {
    throw new LayerFormatError(`whiteout names no entry: ${JSON.stringify(base)}`, { path });
  }
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
