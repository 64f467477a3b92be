/**
 * diffTrees: the changes that turn one tree into another, by a sorted double walk of two merged views (any
 * layer sources: directories, indexed tarballs, stacks). Metadata decides first (mtime included, for
 * directories too); content is compared only where metadata ties and `exact` is asked for (byte for byte:
 * cheaper than hashing both sides).
 */
import { childPath, compareNames, ROOT } from '../path.js';
import type { Entry } from '../entry.js';
import type { NodeStat } from '../tree/layer-tree.js';
import type { MergedView } from '../union/merged-view.js';
import type { ContentChange } from './changes.js';
import { sameContents, sameMetadata } from './compare.js';
import { asHardlink, contentOf, entryFromStat, HardlinkSets, socketWarning } from './entries.js';

/** Options of `diffTrees`. */
export interface DiffTreesOptions {
  /** Compare file content where all metadata (mtime included) ties (default false: metadata decides). */
  exact?: boolean;
  /** Called for a socket in `to`, which has no tar form: left out, or a deletion of what it replaced. */
  onWarning?: (message: string, path: string) => void;
  signal?: AbortSignal;
}

/** A directory of both trees being walked, and what its subtree has shown so far. */
interface Frame {
  readonly path: string;
  readonly parent: Frame | undefined;
  /** Its entry in `to`; undefined for the root, which has none. */
  readonly entry: Entry | undefined;
  /** Its own metadata changed: its entry is written whatever happens below. */
  readonly changed: boolean;
  /**
   * Something below it is as it was, so it cannot become opaque, and changes pass straight on. Until then
   * they are held, since an opaque marker would replace its deletions (and must come before the rest).
   */
  open: boolean;
  /** Its entry has been handed on. */
  written: boolean;
  held: ContentChange[];
  /** Deletions below it. */
  deletions: number;
}

/**
 * The changes from `from` to `to`, in tar order. Where a directory keeps nothing of what it held (every
 * entry below it changed or went) and something was deleted, one opaque marker replaces its whiteouts.
 * Names of `to` that share content (a hardlink set, within one layer) are written once, the others as
 * hardlinks to the first.
 *
 * Changes stream out as the walk goes: a directory's are held back only while nothing below it has been
 * found unchanged, which is when it might still turn opaque.
 */
export async function* diffTrees(from: MergedView, to: MergedView, options: DiffTreesOptions = {}): AsyncGenerator<ContentChange> {
  const links = new HardlinkSets();
  /** Changes handed on by the root, for the consumer. */
  let ready: ContentChange[] = [];

  const fileChange = (kind: 'add' | 'modify', stat: NodeStat, path: string): ContentChange => {
    const entry = entryFromStat(stat);
    const first = links.claim(stat.identity === undefined ? undefined : `${to.lookup(path)!.layer}/${stat.identity}`, path);
    return first !== undefined ? { kind, entry: asHardlink(entry, first) } : { kind, entry, content: contentOf(to, path) };
  };

  /** Hands `change` on from below `frame`: held while it is not open, else after the frame's own entry. */
  const emit = (frame: Frame, change: ContentChange): void => {
    if (!frame.open) {
      frame.held.push(change);
      return;
    }
    writeEntry(frame);
    if (frame.parent === undefined) ready.push(change);
    else emit(frame.parent, change);
  };
  const writeEntry = (frame: Frame): void => {
    if (frame.written) return;
    frame.written = true;
    emit(frame.parent!, { kind: 'modify', entry: frame.entry! });
  };
  /** Something below `frame` is unchanged: it and every directory above it open, outermost first. */
  const keep = (frame: Frame): void => {
    if (frame.open) return;
    if (frame.parent) keep(frame.parent);
    frame.open = true;
    const held = frame.held;
    frame.held = [];
    if (frame.changed || held.length > 0) writeEntry(frame);
    for (const change of held) emit(frame.parent!, change);
  };
  /** The walk below `frame` is over. */
  const close = (frame: Frame): void => {
    const parent = frame.parent!;
    parent.deletions += frame.deletions;
    if (frame.open) {
      if (frame.changed) writeEntry(frame);
      return;
    }
    if (!frame.changed && frame.held.length === 0) return;
    writeEntry(frame);
    const opaque = frame.deletions > 0; // and nothing below is unchanged: one marker says it all
    if (opaque) emit(parent, { kind: 'opaque', path: frame.path });
    for (const change of frame.held) if (!opaque || (change.kind !== 'delete' && change.kind !== 'opaque')) emit(parent, change);
  };

  /** `path` of `to` added, and everything below it: a different type replaces whatever stood there. */
  function* add(path: string, frame: Frame): Generator<void> {
    const stat = to.stat(path)!;
    if (stat.type === 'socket') return options.onWarning?.(socketWarning(false), path);
    emit(frame, stat.type === 'file' ? fileChange('add', stat, path) : { kind: 'add', entry: entryFromStat(stat) });
    yield;
    if (stat.type === 'directory') for (const name of to.readdir(path)) yield* add(childPath(path, name), frame);
  }

  /** Walks the directory of `frame`, yielding after each entry so that what is ready can go. */
  function* walk(frame: Frame): Generator<void> {
    const dir = frame.path;
    options.signal?.throwIfAborted();
    const names = [...new Set([...from.readdir(dir), ...to.readdir(dir)])].sort(compareNames);
    for (const name of names) {
      const path = childPath(dir, name);
      const a = from.lookup(path);
      const b = to.lookup(path);
      if (b?.type === 'socket') {
        if (a?.type === 'socket') {
          keep(frame);
          continue;
        }
        options.onWarning?.(socketWarning(a !== undefined), path); // and what it replaced is deleted below
        if (a === undefined) continue;
      }
      if (!b || b.type === 'socket') {
        frame.deletions++;
        emit(frame, { kind: 'delete', path });
      } else if (!a || a.type !== b.type) {
        yield* add(path, frame);
      } else if (b.type === 'directory') {
        const sb = to.stat(path)!;
        const changed = !sameMetadata(from.stat(path)!, sb); // its mtime too: a directory touched is a change
        if (!changed) keep(frame);
        const child: Frame = { path, parent: frame, entry: entryFromStat(sb), changed, open: false, written: false, held: [], deletions: 0 };
        yield* walk(child);
        close(child);
      } else {
        const sb = to.stat(path)!;
        let same = sameMetadata(from.stat(path)!, sb);
        if (same && options.exact && sb.type === 'file') {
          same = sameContents(() => from.layers[a.layer]!.openContent(path), () => to.layers[b.layer]!.openContent(path));
        }
        if (same) keep(frame);
        else emit(frame, sb.type === 'file' ? fileChange('modify', sb, path) : { kind: 'modify', entry: entryFromStat(sb) });
      }
      yield;
    }
  }

  const root: Frame = { path: ROOT, parent: undefined, entry: undefined, changed: false, open: true, written: true, held: [], deletions: 0 };
  for (const _ of walk(root)) {
    if (ready.length === 0) continue;
    const batch = ready;
    ready = [];
    yield* batch;
  }
  yield* ready;
}
