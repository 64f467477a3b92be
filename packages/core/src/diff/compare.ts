/**
 * Entry comparison for diffs: metadata first, content only when asked.
 */
import type { Entry } from '../entry.js';
import { alignedBuffer } from '../native.js';
import { openHostContent } from '../tree/host-layer.js';
import type { ContentReader, NodeStat } from '../tree/layer-tree.js';
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
  return sameContents(() => openHostContent(hostPath), () => view.layers[node.layer]!.openContent(path));
}

/** Whether two contents hold the same bytes (see `sameBytes`): each is opened here and closed. */
export function sameContents(openA: () => ContentReader, openB: () => ContentReader): boolean {
  const a = openA();
  let b: ContentReader;
  try {
    b = openB();
  } catch (error) {
    a.close();
    throw error;
  }
  return sameBytes(a, b);
}

/** Bytes compared per step: the two buffers stay in a core's cache, and a difference stops the reading. */
const COMPARE_CHUNK = 256 * 1024;
let compareBuffers: [Buffer, Buffer] | undefined;

/**
 * Whether two contents hold the same bytes, read side by side a chunk at a time: memory stays two chunks
 * whatever the size, and the first difference ends it. Comparing the bytes themselves costs less than
 * hashing both sides, and no collision can hide a change. Closes both readers.
 */
function sameBytes(a: ContentReader, b: ContentReader): boolean {
  const [x, y] = (compareBuffers ??= [alignedBuffer(COMPARE_CHUNK), alignedBuffer(COMPARE_CHUNK)]);
  try {
    for (let position = 0; ; position += COMPARE_CHUNK) {
      const n = a.read(x, position);
      const m = b.read(y, position);
      if (n !== m || !x.subarray(0, n).equals(y.subarray(0, m))) return false;
      if (n < COMPARE_CHUNK) return true;
    }
  } finally {
    a.close();
    b.close();
  }
}
