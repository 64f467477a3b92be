/**
 * applyLayer: extract a layer onto a directory that may already hold the layers below it.
 *
 * The parts: this file is the per-layer loop and what is left after an error; `target.ts` reaches the host
 * only through directory descriptors; `entries.ts` creates one entry; `deletions.ts` holds the two ways
 * deletions land (plain and overlay); `state.ts` what an apply remembers between entries.
 */
import { lstatSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fsError, InvalidArgumentError } from '../errors.js';
import { removeTree } from '../host/remove-tree.js';
import type { Entry } from '../entry.js';
import { getXattr, removeXattr, setXattr } from '../native.js';
import { parentOf, ROOT } from '../path.js';
import type { ByteInput } from '../blob/input.js';
import type { LayerDigests } from '../layer/digests.js';
import { readLayer, type ReadLimits } from '../layer/read-layer.js';
import { classifyWhiteout, type OverlayXattrNamespace } from '../whiteout.js';
import { entryFromStat } from '../diff/entries.js';
import type { LayerTree } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import { OverlayDeletions, PlainDeletions } from './deletions.js';
import { EntryWriter, type OwnerRecord } from './entries.js';
import { ApplyState } from './state.js';
import { ApplyTarget } from './target.js';
import { turn } from '../turns.js';

export type { OwnerRecord } from './entries.js';

/** How deletions land in the target: executed (`plain`), or also recorded for overlayfs (`overlay`). */
export type ApplyLayout = 'plain' | 'overlay';

/** Options of `applyLayer`. */
export interface ApplyOptions extends ReadLimits {
  /**
   * `plain` (default): whiteouts delete what they name; an opaque marker empties its directory of what
   * came from below. `overlay`: the same, and deletions are recorded as overlayfs expects them (char 0/0
   * devices and the opaque xattr) so the target can be mounted as an overlayfs layer.
   */
  layout?: ApplyLayout;
  /**
   * Namespace of the opaque xattr in overlay layout: `trusted` (default as root: what a kernel mount reads
   * by default, and only root may set) or `user` (default otherwise: what `userxattr` mounts read).
   */
  xattrNamespace?: OverlayXattrNamespace;
  /**
   * `apply`: chown every entry (needs root). `record`: leave files owned by the caller and report the
   * layer's owners in the result, for rootless use. `xattr`: as `record`, and keep each owner other than
   * root in the file's `user.rootlesscontainers` xattr, as `umoci unpack --rootless` does (a layer's own
   * such xattr is dropped with a warning), so that a rootless commit can give it back (`mapEntryOwner`).
   * The kernel takes no `user.*` xattr on a symlink: a symlink's owner is only reported. Default: `apply`
   * as root, else `record`.
   */
  owners?: 'apply' | 'record' | 'xattr';
  /**
   * Character and block devices: `create` them (default as root), `refuse` them with UNSUPPORTED (default
   * otherwise), or `skip` them, each with a warning, as Docker and containerd do in a user namespace, where
   * no process may make one: what stood at the path is removed all the same, and in overlay layout a
   * whiteout hides what is below it, so the merged view has nothing there. A hardlink to a skipped device
   * is skipped too.
   */
  devices?: 'create' | 'skip' | 'refuse';
  /**
   * In overlay layout, the layers below the target (bottom first): a parent directory the layer does not
   * name but needs is made as a copy-up of theirs (owner, mode, xattrs, times), not as a new 0755
   * directory that would change what the merged view shows.
   */
  lowers?: readonly LayerTree[];
  /**
   * Hash on a native thread (the digests come free while the apply runs on this one): `auto` (default) does
   * for files of 8 MiB and more; give `true` for a large layer that arrives as a stream.
   */
  parallelHash?: boolean | 'auto';
  /**
   * Told the length of each chunk of the layer as given (compressed, if it is) as it is read: a progress
   * bar's count, where reading a file through a counting stream would lose the file's faster path.
   */
  onRead?: (bytes: number) => void;
  /** Non-fatal observations: overlay xattrs dropped from entries, xattrs the file system refused. */
  onWarning?: (message: string, path: string) => void;
  /** List the parent directories the apply made that no entry named (`ApplyResult.impliedDirectories`). */
  listImpliedDirectories?: boolean;
  signal?: AbortSignal;
}

/** What an apply did. */
export interface ApplyResult extends LayerDigests {
  /** Entries applied, whiteouts and opaque markers included. */
  entries: number;
  /** In `record` and `xattr` modes, every entry whose owner is not 0:0. */
  owners: OwnerRecord[];
  /**
   * With `listImpliedDirectories`: the directories made only as parents of entries (`var/run` for a layer
   * whose first entry is `var/run/x`), which a copy into another tree may take through a symlink there, as an
   * extraction into that tree would.
   */
  impliedDirectories?: string[];
}

/** The xattr left on the target root while an in-place apply is under way; it stays if the apply fails. */
export const INCOMPLETE_XATTR = 'user.strata.incomplete';

/** True when `dir` carries the mark of an apply that did not finish. */
export function isApplyIncomplete(dir: string): boolean {
  return getXattr(dir, INCOMPLETE_XATTR) !== undefined;
}

function oneOf<T extends string>(value: T | undefined, allowed: readonly T[], name: string): T | undefined {
  if (value !== undefined && !allowed.includes(value)) throw new InvalidArgumentError(`${name} must be one of ${allowed.join(', ')}: ${String(value)}`);
  return value;
}

/**
 * Applies the layer `source` (a path, stream or byte iterable; plain, gzip or zstd) onto `target`.
 *
 * Order-independent within a layer: an opaque marker hides only what came from below, wherever it stands
 * among its siblings; a whiteout never removes an entry the same layer adds; a hardlink may precede its
 * target, even through a chain of hardlinks. Duplicate paths in one layer: the last one wins, and work
 * pending for the earlier one (its directory mode and times, a hardlink not yet linked) is dropped.
 * Directory modes and times are set after all entries, so children cannot disturb them.
 *
 * Safety: entries are placed by resolving symlinks inside the target (as a process chrooted there would),
 * refusing any that leave it, and every host operation goes through directory descriptors opened without
 * following symlinks, so nothing a layer does, in any order, reaches outside `target`.
 *
 * State after an error: if `target` did not exist, the layer is extracted into a sibling staging directory
 * and renamed into place only on success, so after an error `target` still does not exist. If `target`
 * existed, it is changed in place: while the apply runs, and after it fails, its root carries the xattr
 * `user.strata.incomplete` (see `isApplyIncomplete`), so a half-applied target never looks complete.
 * Applying the same layer again completes it.
 *
 * Throws LAYER_FORMAT, UNSAFE_PATH, LIMIT_EXCEEDED and UNSUPPORTED (see `readLayer`), INVALID_ARGUMENT for
 * bad options, ENOTDIR when `target` is not a directory, FAILED_PRECONDITION when the process's umask
 * changed while the apply created files in an empty target (their modes may be short of the layer's), and
 * Node errno errors from the file system.
 */
export async function applyLayer(source: ByteInput, target: string, options: ApplyOptions = {}): Promise<ApplyResult> {
  oneOf(options.layout, ['plain', 'overlay'], 'layout');
  oneOf(options.xattrNamespace, ['trusted', 'user'], 'xattrNamespace');
  oneOf(options.owners, ['apply', 'record', 'xattr'], 'owners');
  oneOf(options.devices, ['create', 'skip', 'refuse'], 'devices');
  // Applies of files begun together start in line as well: each opens its file, starts its hashing thread
  // and reads its first chunk before its first entry, none of it waiting on the loop, and three such starts
  // in one turn held the loop 20-28 ms. A stream is not held here: its first chunk waits on the loop anyway,
  // and an error it emitted while the apply waited would find no listener (an uncaught exception).
  if (typeof source === 'string' || source instanceof Uint8Array) {
    const wait = turn();
    if (wait) await wait;
  }
  const existing = lstatSync(target, { throwIfNoEntry: false });
  if (existing === undefined) {
    const staging = join(dirname(target), `.${basename(target)}.applying-${process.pid}-${Date.now()}`);
    mkdirSync(staging, { mode: 0o755 });
    try {
      const result = await applyInto(source, staging, options, true);
      renameSync(staging, target);
      return result;
    } catch (error) {
      removeTree(staging);
      throw error;
    }
  }
  if (!existing.isDirectory()) throw fsError('ENOTDIR', 'apply', target, 'the apply target is not a directory');
  const empty = readdirSync(target).length === 0;
  setXattr(target, INCOMPLETE_XATTR, Buffer.from('1'));
  const result = await applyInto(source, target, options, empty);
  removeXattr(target, INCOMPLETE_XATTR);
  return result;
}

/** The layer's entries applied to `root`. `fresh`: the root starts empty (what is there is what this apply made). */
async function applyInto(source: ByteInput, root: string, options: ApplyOptions, fresh: boolean): Promise<ApplyResult> {
  const isRoot = process.getuid?.() === 0;
  const target = new ApplyTarget(resolve(root), fresh);
  try {
    const state = new ApplyState();
    const deletions =
      options.layout === 'overlay' ? new OverlayDeletions(target, state, options.xattrNamespace ?? (isRoot ? 'trusted' : 'user')) : new PlainDeletions(target, state);
    target.onRemoved = (path, wasDirectory) => {
      state.removed(path, wasDirectory);
      if (deletions instanceof OverlayDeletions) deletions.removed(path, wasDirectory);
    };
    const euid = process.geteuid?.() ?? -1;
    const egid = process.getegid?.() ?? -1;
    // New files get the caller's owner unless a directory's setgid bit intervenes; directories this apply
    // makes get their modes (setgid included) only at the end, so only the root's bit matters.
    const rootSetgid = (lstatSync(root).mode & 0o2000) !== 0;
    const writer = new EntryWriter(target, state, deletions, {
      owners: options.owners ?? (isRoot ? 'apply' : 'record'),
      devices: options.devices ?? (isRoot ? 'create' : 'refuse'),
      ...(options.devices === undefined && !isRoot ? { devicesRefused: ' (only root can make them; the devices option can skip them)' } : {}),
      warn: options.onWarning ?? (() => {}),
      ownerIsDefault: (entry: Entry) => fresh && !rootSetgid && entry.uid === euid && entry.gid === egid,
    });
    const implied = options.listImpliedDirectories ? { made: [] as string[], named: new Set<string>() } : undefined;
    const below = options.layout === 'overlay' && options.lowers !== undefined && options.lowers.length > 0 ? new MergedView(options.lowers) : undefined;
    if (below !== undefined || implied !== undefined) {
      target.onParentMade = (path) => {
        implied?.made.push(path);
        const stat = below?.stat(path);
        if (stat?.type === 'directory') writer.implicitDirectory(path, entryFromStat(stat));
      };
    }
    const { layout: _layout, xattrNamespace: _ns, owners: _owners, devices: _devices, onWarning: _warn, lowers: _lowers, listImpliedDirectories: _implied, ...readOptions } = options;
    const reader = readLayer(source, readOptions);
    const entries = reader.entries();
    let count = 0;
    try {
      for (;;) {
        // Most entries come at once: no promise and no microtask turn for each.
        let next = entries.take();
        if (next instanceof Promise) next = await next;
        if (next === undefined) break;
        const { entry, body } = next;
        count++;
        const kind = classifyWhiteout(entry.path);
        if (kind.kind === 'aufs-meta') continue;
        if (kind.kind === 'whiteout') {
          deletions.whiteout(target.resolve(kind.target));
          continue;
        }
        if (kind.kind === 'opaque') {
          deletions.opaque(parentOf(target.resolve(entry.path)));
          continue;
        }
        if (entry.path === ROOT) {
          writer.root(entry);
          continue;
        }
        const path = writer.place(entry.path);
        if (implied !== undefined && entry.type === 'directory') implied.named.add(path);
        const creating = writer.create(entry, body, path);
        if (creating) await creating;
        state.touch(path);
        const wait = turn();
        if (wait) await wait;
      }
    } finally {
      await entries.return(); // after the last entry, nothing; after an error, the input closed as unfinished
    }
    await writer.finish();
    target.confirmModes();
    const result: ApplyResult = { ...(await reader.digests()), entries: count, owners: writer.ownerRecords };
    if (implied !== undefined) result.impliedDirectories = implied.made.filter((path) => !implied.named.has(path) && target.kind(path) === 'directory');
    return result;
  } finally {
    target.close();
  }
}
