/**
 * diffUpper: an overlay-form upper directory (written by strata's WritableLayer or by the kernel) read back
 * as a change set. It walks the upper only; the lowers are consulted just to tell an addition from a
 * modification, to drop copy-ups that changed nothing, and to know whether a deletion hides anything.
 * Cost grows with the upper, not with the image.
 *
 * Changes stream out while the walk goes on, so a writer consuming them works alongside it. The walk
 * queues each entry in tar order and hands on the longest prefix whose fate is known. Two decisions depend
 * on entries walked later:
 * - a directory that did not change itself is written only as the parent of a change: it is known once
 *   its subtree is walked, or as soon as a change below it turns up;
 * - a hardlinked file that did not change is written only if another name of its set did: known once as
 *   many names as its link count have been walked (or one changed), else at the end of the walk.
 */
import { UnsupportedError } from '../errors.js';
import type { Entry } from '../entry.js';
import { STAT } from '../native.js';
import { childPath, ROOT } from '../path.js';
import { batchIdentity, batchMode, statFromBatch } from '../tree/host-stat.js';
import { DirectoryScan } from '../tree/host-walk.js';
import type { LayerTree, NodeStat } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import { isOpaqueValue, isWhiteoutDevice, opaqueXattr, type OverlayXattrNamespace } from '../whiteout.js';
import type { ContentChange } from './changes.js';
import { sameContent, sameMetadata } from './compare.js';
import { asHardlink, entryFromStat, HardlinkSets, socketWarning } from './entries.js';

/** Options of `diffUpper`. */
export interface DiffUpperOptions {
  /** Namespace of the upper's overlay markers: `trusted` (default) or `user`. */
  xattrNamespace?: OverlayXattrNamespace;
  /** Called for a socket in the upper, which has no tar form: left out, or a deletion of what it replaced. */
  onWarning?: (message: string, path: string) => void;
  signal?: AbortSignal;
}

/** Names of one upper inode (a hardlinked file), as far as the walk has seen them. */
interface LinkSet {
  readonly identity: string;
  /** Names the upper's inode has: once that many are walked, the set is complete. */
  readonly nlink: number;
  seen: number;
  /** Some name changed: every name is written. */
  changed: boolean;
  /** Names walked while the set was unchanged, waiting for its fate. */
  waiting: UpperNode[];
}

interface UpperNode {
  readonly path: string;
  readonly hostPath: string;
  /** The directory this entry is in; undefined at the top level. */
  readonly parent: UpperNode | undefined;
  /** Set for entries; undefined for whiteouts. */
  readonly entry?: Entry;
  readonly lower: NodeStat | undefined;
  /** Directories: opaque in the upper and hiding something below (an opaque marker is written). */
  readonly opaque?: boolean;
  /** Directories: nothing of the lowers shows below it (opaque, new, or replacing a non-directory). */
  readonly hidesLowers?: boolean;
  readonly links?: LinkSet | undefined;
  /** Written: changed itself, the parent of a written entry, or a name of a changed hardlink set. */
  emit: boolean;
  /** Directories: the whole subtree has been walked. */
  closed: boolean;
}

/** A directory being walked: its sorted listing and how far into it the walk is. */
interface Frame {
  readonly node: UpperNode | undefined;
  readonly dir: string;
  readonly hostDir: string;
  /** Below a directory that hides the lowers (opaque, new, or replacing a non-directory). */
  readonly hidden: boolean;
  readonly scan: DirectoryScan;
  next: number;
}

/**
 * The changes the upper directory `upper` makes to `lowers` (bottom first, as `MergedView` takes them), in
 * tar order.
 *
 * - A whiteout is emitted only where a lower has something; an opaque marker only where the lower
 *   directory has contents (recent kernels mark new directories opaque even over nothing).
 * - A copied-up entry equal to its lower one (type, mode, owner, size, link target, xattrs, mtime; content
 *   too where one mtime is truncated to whole seconds) is left out, as after `mv a t; mv t a`.
 * - A directory appears when it changed (its mtime included) or as the parent of a change, with its own
 *   metadata.
 * - Upper files sharing an inode are written once, the other names as hardlinks; if any name of such a
 *   set changed, every name of it is written, so the link survives. Whiteouts, which the kernel may
 *   hardlink to one inode, are never treated as links.
 *
 * Throws UNSUPPORTED for `redirect` or `metacopy` xattrs (redirect_dir / metacopy mounts), which this
 * diff does not interpret.
 *
 * A synchronous generator (every call it makes is): `for...of` and `for await` both consume it, and
 * `writeChanges` encodes it without an `await` per change.
 */
export function* diffUpper(lowers: readonly LayerTree[], upper: string, options: DiffUpperOptions = {}): Generator<ContentChange> {
  const ns = options.xattrNamespace ?? 'trusted';
  const opaqueKey = opaqueXattr(ns);
  const refusedKeys = [`${ns}.overlay.redirect`, `${ns}.overlay.metacopy`];
  const view = new MergedView(lowers);

  /** Entries walked but not yet handed on, in tar order; `head` is the first not handed on. */
  let queue: UpperNode[] = [];
  let head = 0;
  const sets = new Map<string, LinkSet>();
  /** Hardlink sets not yet known to be written or not: while any is open, an unchanged directory may still be needed. */
  let openSets = 0;
  const links = new HardlinkSets();

  const markWritten = (node: UpperNode): void => {
    node.emit = true;
    for (let p = node.parent; p !== undefined && !p.emit; p = p.parent) p.emit = true;
  };

  const joinSet = (node: UpperNode, set: LinkSet): void => {
    set.seen++;
    if (set.changed) {
      markWritten(node);
      return;
    }
    if (node.emit) {
      set.changed = true;
      for (const partner of set.waiting) markWritten(partner);
      set.waiting = [];
      if (set.seen <= set.nlink) openSets--;
      return;
    }
    set.waiting.push(node);
    if (set.seen === set.nlink) {
      openSets--;
      set.waiting = [];
    }
  };

  /** Whether the fate of `node` is known (`ended`: the walk is over, so everything is). */
  const decided = (node: UpperNode, ended: boolean): boolean => {
    if (ended || node.emit) return true;
    if (node.entry === undefined) return true;
    if (node.entry.type === 'directory') return node.closed && openSets === 0;
    const set = node.links;
    return set === undefined || set.changed || set.seen >= set.nlink;
  };

  /**
   * Changes ready to hand on, in tar order. Plain functions fill it and the walk's one generator drains it:
   * generators nested per change cost a fresh process's first diff about 5 ms of interpreter and compiles.
   */
  const ready: ContentChange[] = [];

  const changesOf = (node: UpperNode): void => {
    const entry = node.entry;
    if (entry === undefined) {
      ready.push({ kind: 'delete', path: node.path });
      return;
    }
    const kind = node.lower ? 'modify' : 'add';
    if (entry.type === 'directory') {
      ready.push({ kind, entry });
      if (node.opaque) ready.push({ kind: 'opaque', path: node.path });
      return;
    }
    const first = links.claim(node.links?.identity, node.path);
    if (first !== undefined) ready.push({ kind, entry: asHardlink(entry, first) });
    else if (entry.type === 'file') ready.push({ kind, entry, content: { kind: 'path', path: node.hostPath } });
    else ready.push({ kind, entry });
  };

  /** Moves the decided prefix of the queue to `ready`. */
  const release = (ended: boolean): void => {
    while (head < queue.length) {
      const node = queue[head]!;
      if (!decided(node, ended)) break;
      head++;
      if (node.emit) changesOf(node);
    }
    if (head > 4096 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
  };

  const open = (node: UpperNode | undefined, dir: string, hostDir: string, hidden: boolean): Frame => {
    return { node, dir, hostDir, hidden, scan: new DirectoryScan(hostDir), next: 0 };
  };

  /** A deletion (written where a lower shows something at `path`). */
  const deletion = (path: string, hostPath: string, parent: UpperNode | undefined): UpperNode => ({ path, hostPath, parent, lower: undefined, emit: true, closed: true });

  /** The node for entry `k` of a frame's listing; undefined when it is nothing to diff. */
  const visit = (frame: Frame, k: number): UpperNode | undefined => {
    const batch = frame.scan.seek(k);
    const i = frame.scan.index;
    const mode = batchMode(batch, i);
    if (mode === 0) return undefined; // removed since it was listed
    const name = frame.scan.names[k]!;
    const path = childPath(frame.dir, name);
    const hostPath = `${frame.hostDir}/${name}`;
    const parent = frame.node;
    const shown = frame.hidden ? undefined : view.lookup(path);
    const o = i * STAT.fields;
    if (isWhiteoutDevice(mode, batch.stats[o + STAT.rdevMajor]!, batch.stats[o + STAT.rdevMinor]!)) {
      return shown ? deletion(path, hostPath, parent) : undefined; // a whiteout
    }
    const stat = statFromBatch(batch, i, path, hostPath);
    if (stat === undefined) return undefined;
    if (stat.type === 'socket') {
      options.onWarning?.(socketWarning(shown !== undefined), path);
      return shown ? deletion(path, hostPath, parent) : undefined;
    }
    for (const key of refusedKeys) {
      if (stat.xattrs.has(key)) throw new UnsupportedError(`${key} on ${path}: uppers of redirect_dir or metacopy mounts are not supported`, { path });
    }
    const entry = entryFromStat(stat);
    const lower = shown ? view.stat(path) : undefined;
    if (stat.type === 'directory') {
      const markedOpaque = isOpaqueValue(stat.xattrs.get(opaqueKey));
      const opaque = markedOpaque && lower?.type === 'directory' && view.readdir(path).length > 0;
      // Its own mtime counts: a directory where the container only created and deleted files (/tmp) is a
      // change, and the image must show the time the container left, as containerd's and moby's diffs do.
      const emit = !lower || lower.type !== 'directory' || opaque || !sameMetadata(entry, lower, { ignoreMtime: true }) || !sameTime(entry, lower, () => true);
      const hidesLowers = frame.hidden || markedOpaque || lower?.type !== 'directory';
      return { path, hostPath, parent, entry, lower, opaque, hidesLowers, emit, closed: false };
    }
    const emit = !lower || !sameMetadata(entry, lower, { ignoreMtime: true }) || !sameTime(entry, lower, () => sameContent(hostPath, view, path));
    return { path, hostPath, parent, entry, lower, emit, closed: true, links: stat.nlink > 1 ? linkSetOf(batchIdentity(batch, i), stat.nlink) : undefined };
  };

  const linkSetOf = (identity: string, nlink: number): LinkSet => {
    let set = sets.get(identity);
    if (set === undefined) {
      set = { identity, nlink, seen: 0, changed: false, waiting: [] };
      sets.set(identity, set);
      openSets++;
    }
    return set;
  };

  const stack: Frame[] = [open(undefined, ROOT, upper.length > 1 && upper.endsWith('/') ? upper.slice(0, -1) : upper, false)];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next === frame.scan.names.length) {
      stack.pop();
      if (frame.node) frame.node.closed = true;
      release(false);
    } else {
      options.signal?.throwIfAborted();
      const node = visit(frame, frame.next++);
      if (node === undefined) continue;
      queue.push(node);
      if (node.emit) markWritten(node);
      if (node.links) joinSet(node, node.links);
      if (node.hidesLowers !== undefined) stack.push(open(node, node.path, node.hostPath, node.hidesLowers));
      else release(false);
    }
    if (ready.length > 0) {
      for (let i = 0; i < ready.length; i++) yield ready[i]!;
      ready.length = 0;
    }
  }
  release(true);
  yield* ready;
}

/**
 * Same mtime, or times that differ only by truncation to whole seconds (a copy-up onto a file system that
 * keeps whole seconds) where the content is the same: for a file, its bytes; a directory's are its entries,
 * which the walk compares one by one.
 */
function sameTime(entry: Entry, lower: NodeStat, contentEqual: () => boolean): boolean {
  if (entry.mtime.sec === lower.mtime.sec && entry.mtime.nsec === lower.mtime.nsec) return true;
  const truncated = entry.mtime.sec === lower.mtime.sec && (entry.mtime.nsec === 0 || lower.mtime.nsec === 0);
  return truncated && (entry.type === 'file' || entry.type === 'directory') && contentEqual();
}
