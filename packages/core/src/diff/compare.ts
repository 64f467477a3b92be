/**
 * Entry comparison for diffs: metadata first, content only when asked.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Entry } from '../entry.js';
import type { NodeStat } from '../tree/layer-tree.js';
import type { MergedView } from '../union/merged-view.js';
import { isOverlayXattr } from '../whiteout.js';

function sameXattrs(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean {
  if (a.size === 0 && b.size === 0) return true;
  const keys = (m: ReadonlyMap<string, Uint8Array>) => [...m.keys()].filter((k) => !isOverlayXattr(k)).sort();
  const ka = keys(a);
  const kb = keys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i] || Buffer.compare(a.get(ka[i]!)!, b.get(kb[i]!)!) !== 0) return false;
  }
  return true;
}

/** Type, mode, owner, size, link target, device numbers, xattrs and (unless ignored) mtime. */
export function sameMetadata(a: Entry | NodeStat, b: Entry | NodeStat, options: { ignoreMtime?: boolean } = {}): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.size === b.size &&
    (a.linkname ?? '') === (b.linkname ?? '') &&
    (a.devmajor ?? 0) === (b.devmajor ?? 0) &&
    (a.devminor ?? 0) === (b.devminor ?? 0) &&
    (options.ignoreMtime || (a.mtime.sec === b.mtime.sec && a.mtime.nsec === b.mtime.nsec)) &&
    sameXattrs(a.xattrs, b.xattrs)
  );
}

/** Whether the host file at `hostPath` holds the bytes the merged view shows at `path`. */
export function sameContent(hostPath: string, view: MergedView, path: string): boolean {
  const node = view.lookup(path);
  if (!node) return false;
  return equalBytes(readHost(hostPath), view.layers[node.layer]!.readAll(path));
}

function readHost(hostPath: string): Uint8Array {
  const fd = openSync(hostPath, 'r');
  try {
    const chunks: Buffer[] = [];
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) chunks.push(Buffer.from(buffer.subarray(0, n)));
    return Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
}

/** Byte equality. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
