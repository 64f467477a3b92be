/**
 * Walks a host directory in tar order (parents first, siblings in byte order), as entries ready to write.
 * Each directory is listed, sorted, by one native call, and lstat'ed by one more per few hundred entries
 * (`lstatBatch`): per entry that is one `fstatat` (plus `listxattrat`, and `readlink` for symlinks) and no
 * JavaScript wrapper objects.
 */
import { basename, dirname } from 'node:path';
import type { Entry } from '../entry.js';
import { listDirSorted, lstatBatch, type LstatBatch } from '../native.js';
import { childPath, ROOT } from '../path.js';
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

/**
 * Entries lstat'ed per native call. The whole of a large directory in one call held the event loop for as
 * long as it took: 100-180 ms for the 18,000 entries of /usr/share/man/man1; a chunk takes 1-3 ms, and the
 * walk's caller takes its turns (see `turn`) between chunks.
 */
const STAT_CHUNK = 256;

/**
 * A host directory's entries in tar order (byte order of their names), lstat'ed a chunk at a time as a
 * walk reaches them. A name that is not UTF-8 comes with its bytes escaped (see `name-bytes.ts`).
 */
export class DirectoryScan {
  readonly names: readonly string[];
  /** After `seek(k)`: the batch holding entry `k`, and its index there. */
  batch: LstatBatch | undefined;
  index = 0;
  /** Index in `names` of the batch's first entry. */
  #start = -1;

  constructor(readonly hostDir: string) {
    this.names = listDirSorted(hostDir);
  }

  /** Makes entry `k` of `names` the current one (`batch`, `index`), lstat'ing its chunk when it is not yet. */
  seek(k: number): LstatBatch {
    const start = k - (k % STAT_CHUNK);
    if (start !== this.#start || this.batch === undefined) {
      this.batch = lstatBatch(this.hostDir, this.names.slice(start, start + STAT_CHUNK));
      this.#start = start;
    }
    this.index = k - start;
    return this.batch;
  }
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
  // An explicit stack keeps memory to one directory listing (and one chunk of its lstats) per level.
  const stack: Array<{ dir: string; scan: DirectoryScan; next: number }> = [];
  const hostRoot = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  stack.push({ dir: ROOT, scan: new DirectoryScan(hostRoot), next: 0 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const { scan } = top;
    if (top.next >= scan.names.length) {
      stack.pop();
      continue;
    }
    options.signal?.throwIfAborted();
    const name = scan.names[top.next]!;
    const batch = scan.seek(top.next++);
    const hostPath = `${scan.hostDir}/${name}`;
    const path = childPath(top.dir, name);
    const item = itemOf(batch, scan.index, hostPath, path);
    if (!item) continue;
    yield item;
    if (item.entry.type === 'directory') stack.push({ dir: path, scan: new DirectoryScan(hostPath), next: 0 });
  }
}

/**
 * A host entry's metadata as a tar entry. Not a copy: a non-socket `NodeStat` is an `Entry` plus link
 * bookkeeping (`nlink`, `identity`) that the writer never reads, and this walk makes one per entry.
 */
function entryOf(stat: NodeStat): Entry {
  return stat as unknown as Entry;
}
