/**
 * diffUpper: an overlay-form upper directory (written by strata's WritableLayer or by the kernel) read back
 * as a change set. It walks the upper only; the lowers are consulted just to tell an addition from a
 * modification, to drop copy-ups that changed nothing, and to know whether a deletion hides anything.
 * Cost grows with the upper, not with the image.
 */
import { join } from 'node:path';
import { UnsupportedError } from '../errors.js';
import type { Entry } from '../entry.js';
import { STAT } from '../native.js';
import { childPath, parentOf, ROOT } from '../path.js';
import { batchIdentity, batchMode, statFromBatch } from '../tree/host-stat.js';
import { scanSorted } from '../tree/host-walk.js';
import type { LayerTree, NodeStat } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import type { OverlayXattrNamespace } from '../whiteout.js';
import type { ContentChange } from './changes.js';
import { sameContent, sameMetadata } from './compare.js';
import { asHardlink, entryFromStat, HardlinkSets } from './entries.js';

/** Options of `diffUpper`. */
export interface DiffUpperOptions {
  /** Namespace of the upper's overlay markers: `trusted` (default) or `user`. */
  xattrNamespace?: OverlayXattrNamespace;
  signal?: AbortSignal;
}

interface UpperNode {
  path: string;
  hostPath: string;
  /** Device and inode, for non-directories with more than one name. */
  identity?: string;
  /** Set for entries; undefined for whiteouts. */
  entry?: Entry;
  lower?: NodeStat;
  emit: boolean;
  /** Directories: opaque in the upper and hiding something below. */
  opaque?: boolean;
}

/**
 * The changes an upper directory makes to `lowers` (bottom first), in tar order.
 *
 * - A whiteout is emitted only where a lower has something; an opaque marker only where the lower
 *   directory has contents (recent kernels mark new directories opaque even over nothing).
 * - A copied-up entry equal to its lower one (type, mode, owner, size, link target, xattrs, mtime; content
 *   too where one mtime is truncated to whole seconds) is left out, as after `mv a t; mv t a`.
 * - A directory appears when it changed or as the parent of a change, with its own metadata.
 * - Upper files sharing an inode are written once, the other names as hardlinks; if any name of such a
 *   set changed, every name of it is written, so the link survives. Whiteouts, which the kernel may
 *   hardlink to one inode, are never treated as links.
 *
 * Throws UNSUPPORTED for `redirect` or `metacopy` xattrs (redirect_dir / metacopy mounts), which this
 * diff does not interpret.
 */
export async function* diffUpper(upper: string, lowers: readonly LayerTree[], options: DiffUpperOptions = {}): AsyncGenerator<ContentChange> {
  const ns = options.xattrNamespace ?? 'trusted';
  const view = new MergedView(lowers);
  const nodes: UpperNode[] = [];

  const visit = (dir: string, hostDir: string, hidden: boolean): void => {
    const { batch, order } = scanSorted(hostDir);
    for (const i of order) {
      options.signal?.throwIfAborted();
      const name = batch.names[i]!;
      const path = childPath(dir, name);
      const hostPath = join(hostDir, name);
      const mode = batchMode(batch, i);
      if (mode === 0) continue; // removed since it was listed
      const lowerNode = hidden ? undefined : view.lookup(path);
      const o = i * STAT.fields;
      if ((mode & 0o170000) === 0o020000 && batch.stats[o + STAT.rdevMajor] === 0 && batch.stats[o + STAT.rdevMinor] === 0) {
        if (lowerNode) nodes.push({ path, hostPath, emit: true });
        continue;
      }
      const stat = statFromBatch(batch, i, path, hostPath);
      if (stat === undefined) continue;
      for (const key of [`${ns}.overlay.redirect`, `${ns}.overlay.metacopy`]) {
        if (stat.xattrs.has(key)) throw new UnsupportedError(`${key} on ${path}: uppers of redirect_dir or metacopy mounts are not supported`, { path });
      }
      const entry = entryFromStat(stat);
      const lower = lowerNode ? view.stat(path) : undefined;
      const node: UpperNode = { path, hostPath, entry, emit: false, ...(lower ? { lower } : {}) };
      if (stat.type !== 'directory' && stat.nlink > 1) node.identity = batchIdentity(batch, i);
      if (stat.type === 'directory') {
        const markedOpaque = Buffer.from(stat.xattrs.get(`${ns}.overlay.opaque`) ?? []).toString() === 'y';
        node.opaque = markedOpaque && lower?.type === 'directory' && view.readdir(path).length > 0;
        node.emit = !lower || lower.type !== 'directory' || !sameMetadata(entry, lower, { ignoreMtime: true }) || node.opaque;
        nodes.push(node);
        visit(path, hostPath, hidden || markedOpaque || lower?.type !== 'directory');
      } else {
        node.emit = !lower || !sameMetadata(entry, lower, { ignoreMtime: true }) || !sameTime(entry, lower, () => sameContent(hostPath, view, path));
        nodes.push(node);
      }
    }
  };
  visit(ROOT, upper, false);

  // Hardlink sets: one changed name brings the whole set.
  const sets = new Map<string, UpperNode[]>();
  for (const node of nodes) {
    if (!node.entry || node.identity === undefined) continue;
    const set = sets.get(node.identity);
    if (set) set.push(node);
    else sets.set(node.identity, [node]);
  }
  for (const set of sets.values()) if (set.some((n) => n.emit)) for (const n of set) n.emit = true;

  // Parents of anything emitted are emitted too.
  const needed = new Set<string>();
  for (const node of nodes) if (node.emit) for (let p = parentOf(node.path); p !== ROOT && !needed.has(p); p = parentOf(p)) needed.add(p);

  const links = new HardlinkSets();
  for (const node of nodes) {
    if (!node.entry) {
      yield { kind: 'delete', path: node.path };
      continue;
    }
    const entry = node.entry;
    if (entry.type === 'directory') {
      if (!node.emit && !needed.has(node.path)) continue;
      yield { kind: node.lower ? 'modify' : 'add', entry };
      if (node.opaque) yield { kind: 'opaque', path: node.path };
      continue;
    }
    if (!node.emit) continue;
    const kind = node.lower ? 'modify' : 'add';
    const first = links.claim(node.identity, node.path);
    if (first !== undefined) {
      yield { kind, entry: asHardlink(entry, first) };
      continue;
    }
    yield entry.type === 'file' ? { kind, entry, content: { kind: 'path', path: node.hostPath } } : { kind, entry };
  }
}

/** Same mtime, or times that differ only by truncation to whole seconds where the content is the same. */
function sameTime(entry: Entry, lower: NodeStat, contentEqual: () => boolean): boolean {
  if (entry.mtime.sec === lower.mtime.sec && entry.mtime.nsec === lower.mtime.nsec) return true;
  const truncated = entry.mtime.sec === lower.mtime.sec && (entry.mtime.nsec === 0 || lower.mtime.nsec === 0);
  return truncated && entry.type === 'file' && contentEqual();
}
