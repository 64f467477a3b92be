/**
 * Walks a host directory in tar order (parents first, siblings in byte order), as entries ready to write.
 * Each directory is listed and lstat'ed by one native call (`lstatBatch`): per entry that is one `fstatat`
 * (plus `llistxattr`, and `readlink` for symlinks) and no JavaScript wrapper objects.
 */
import { basename, dirname } from 'node:path';
import type { Entry } from '../entry.js';
import { lstatBatch, type LstatBatch } from '../native.js';
import { childPath, compareNames, ROOT } from '../path.js';
import type { WriteItem } from '../tar/writer.js';
import { batchIdentity, batchMode, statFromBatch } from './host-stat.js';
import type { NodeStat } from './layer-tree.js';

/** Options of `walkHostDirectory`. */
export interface HostWalkOptions {
  /** Read extended attributes (default true). */
  xattrs?: boolean;
  /** Include an entry for the root directory itself (default false, as Docker layers do). */
  includeRoot?: boolean;
  /** Called for what cannot go into a layer (sockets), which is skipped. */
  onWarning?: (message: string, path: string) => void;
  signal?: AbortSignal;
}

/** A directory's batch with its entries' indices in byte order of their names. */
export interface SortedBatch {
  batch: LstatBatch;
  order: number[];
}

/** Lists and lstats the entries of `hostDir` in one native call, sorted by name (tar order). */
export function scanSorted(hostDir: string): SortedBatch {
  const batch = lstatBatch(hostDir);
  const names = batch.names;
  const order = Array.from(names, (_, i) => i).sort((a, b) => compareNames(names[a]!, names[b]!));
  return { batch, order };
}

/**
 * The entries of the tree at `root`, each with its content source. A file with several names is written
 * in full at its first name in walk order and as a hardlink at the others (identity by device and inode).
 * A synchronous generator, so the writer pulls entries without an `await` each.
 */
export function* walkHostDirectory(root: string, options: HostWalkOptions = {}): Generator<WriteItem> {
  const withXattrs = options.xattrs ?? true;
  const seen = new Map<string, string>();

  const itemOf = (batch: LstatBatch, i: number, hostPath: string, path: string): WriteItem | undefined => {
    if (batchMode(batch, i) === 0) return undefined; // removed since it was listed
    const stat = statFromBatch(batch, i, path, hostPath, withXattrs);
    if (stat === undefined || stat.type === 'socket') {
      options.onWarning?.(`skipping ${stat?.type ?? 'unknown file type'}: sockets have no tar form`, path);
      return undefined;
    }
    if (stat.type !== 'directory' && stat.nlink > 1) {
      // Files, and hardlinked symlinks, devices and fifos too, as tar links them.
      const identity = stat.identity ?? batchIdentity(batch, i);
      const first = seen.get(identity);
      if (first !== undefined) return { entry: { ...entryOf(stat), type: 'hardlink', size: 0, linkname: first } };
      seen.set(identity, path);
    }
    const entry = entryOf(stat);
    return entry.type === 'file' ? { entry, content: { kind: 'path', path: hostPath } } : { entry };
  };

  if (options.includeRoot) {
    const item = itemOf(lstatBatch(dirname(root), [basename(root)]), 0, root, ROOT);
    if (item) yield item;
  }
  // An explicit stack keeps memory to one directory listing per level.
  const stack: Array<{ hostDir: string; dir: string; scan: SortedBatch; next: number }> = [];
  const hostRoot = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  stack.push({ hostDir: hostRoot, dir: ROOT, scan: scanSorted(hostRoot), next: 0 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const { batch, order } = top.scan;
    if (top.next >= order.length) {
      stack.pop();
      continue;
    }
    options.signal?.throwIfAborted();
    const i = order[top.next++]!;
    const name = batch.names[i]!;
    const hostPath = `${top.hostDir}/${name}`;
    const path = childPath(top.dir, name);
    const item = itemOf(batch, i, hostPath, path);
    if (!item) continue;
    yield item;
    if (item.entry.type === 'directory') stack.push({ hostDir: hostPath, dir: path, scan: scanSorted(hostPath), next: 0 });
  }
}

/**
 * A host entry's metadata as a tar entry. Not a copy: a non-socket `NodeStat` is an `Entry` plus link
 * bookkeeping (`nlink`, `identity`) that the writer never reads, and this walk makes one per entry.
 */
function entryOf(stat: NodeStat): Entry {
  return stat as unknown as Entry;
}
