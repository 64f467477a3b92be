/**
 * diffTrees: the changes that turn one tree into another, by a sorted double walk of two merged views (any
 * layer sources: directories, indexed tarballs, stacks). Metadata decides first; content is compared only
 * where metadata ties and `exact` is asked for (byte for byte: cheaper than hashing both sides).
 */
import { childPath, compareNames, ROOT } from '../path.js';
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

interface Subtree {
  changes: ContentChange[];
  /** Entries of `to` below this directory left as they were. */
  unchanged: number;
  /** Deletions below this directory. */
  deletions: number;
}

/**
 * The changes from `from` to `to`, in tar order. Where a directory keeps nothing of what it held (every
 * entry below it changed or went) and something was deleted, one opaque marker replaces its whiteouts.
 * Names of `to` that share content (a hardlink set, within one layer) are written once, the others as
 * hardlinks to the first.
 */
export async function* diffTrees(from: MergedView, to: MergedView, options: DiffTreesOptions = {}): AsyncGenerator<ContentChange> {
  const links = new HardlinkSets();
  const fileChange = (kind: 'add' | 'modify', stat: NodeStat, path: string): ContentChange => {
    const entry = entryFromStat(stat);
    const first = links.claim(stat.identity === undefined ? undefined : `${to.lookup(path)!.layer}/${stat.identity}`, path);
    return first !== undefined ? { kind, entry: asHardlink(entry, first) } : { kind, entry, content: contentOf(to, path) };
  };
  const add = (path: string, out: ContentChange[]): void => {
    const stat = to.stat(path)!;
    if (stat.type === 'socket') return options.onWarning?.(socketWarning(false), path);
    out.push(stat.type === 'file' ? fileChange('add', stat, path) : { kind: 'add', entry: entryFromStat(stat) });
    if (stat.type === 'directory') for (const name of to.readdir(path)) add(childPath(path, name), out);
  };

  const walk = (dir: string): Subtree => {
    options.signal?.throwIfAborted();
    const before = from.readdir(dir);
    const after = to.readdir(dir);
    const names = [...new Set([...before, ...after])].sort(compareNames);
    const result: Subtree = { changes: [], unchanged: 0, deletions: 0 };
    for (const name of names) {
      const path = childPath(dir, name);
      const a = from.lookup(path);
      const b = to.lookup(path);
      if (b?.type === 'socket') {
        if (a?.type === 'socket') {
          result.unchanged++;
          continue;
        }
        options.onWarning?.(socketWarning(a !== undefined), path); // and what it replaced is deleted below
        if (a === undefined) continue;
      }
      if (!b || b.type === 'socket') {
        result.changes.push({ kind: 'delete', path });
        result.deletions++;
        continue;
      }
      if (!a || a.type !== b.type) {
        add(path, result.changes); // a different type replaces whatever stood there, subtree and all
        continue;
      }
      const sa = from.stat(path)!;
      const sb = to.stat(path)!;
      if (b.type === 'directory') {
        const sub = walk(path);
        const changed = !sameMetadata(sa, sb, { ignoreMtime: true });
        if (changed || sub.changes.length > 0) {
          result.changes.push({ kind: 'modify', entry: entryFromStat(sb) });
          if (sub.unchanged === 0 && sub.deletions > 0) {
            result.changes.push({ kind: 'opaque', path });
            result.changes.push(...sub.changes.filter((c) => c.kind !== 'delete' && c.kind !== 'opaque'));
          } else {
            result.changes.push(...sub.changes);
          }
        }
        if (!changed) result.unchanged++;
        result.unchanged += sub.unchanged;
        result.deletions += sub.deletions;
        continue;
      }
      let same = sameMetadata(sa, sb);
      if (same && options.exact && sb.type === 'file') {
        same = sameContents(() => from.layers[a.layer]!.openContent(path), () => to.layers[b.layer]!.openContent(path));
      }
      if (same) {
        result.unchanged++;
        continue;
      }
      result.changes.push(sb.type === 'file' ? fileChange('modify', sb, path) : { kind: 'modify', entry: entryFromStat(sb) });
    }
    return result;
  };

  yield* walk(ROOT).changes;
}
