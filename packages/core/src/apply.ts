/**
 * applyLayer: extract a layer onto a directory that may already hold the layers below it.
 *
 * Safety: every entry is placed through `resolveInRoot`, so no name, symlink (in the layer or already in
 * the target) or hardlink ever reaches outside the target; escapes are UNSAFE_PATH errors, not clamps.
 * A file is never written through an existing symlink: what stands at an entry's path is removed first.
 */
import {
  closeSync,
  fchmodSync,
  fchownSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  chmodSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  constants as fsConstants,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LayerFormatError, UnsupportedError } from './errors.js';
import type { Entry } from './entry.js';
import { getXattr, lutimens, mknod, removeXattr, setXattr, S_IFBLK, S_IFCHR, S_IFIFO, writeNewFile } from './native.js';
import { childPath, isWithin, parentOf, resolveInRoot, ROOT } from './path.js';
import type { ByteInput, LayerDigests } from './tar/digest.js';
import { readLayer, type ReadLayerOptions } from './tar/reader.js';
import { classifyWhiteout, isOverlayXattr, opaqueXattr, type OverlayXattrNamespace } from './whiteout.js';

const EMPTY = new Uint8Array(0);

/** How deletions land in the target. */
export type ApplyFormat = 'plain' | 'overlay';

/** Options of `applyLayer`. */
export interface ApplyOptions extends ReadLayerOptions {
  /**
   * `plain` (default): whiteouts delete what they name; an opaque marker empties its directory of what
   * came from below. `overlay`: the same, and deletions are recorded as overlayfs expects them (char 0/0
   * devices and the opaque xattr) so the target can be mounted as an overlayfs layer.
   */
  format?: ApplyFormat;
  /** Namespace of the opaque xattr in overlay form: `trusted` (default) or `user` (for `userxattr` mounts). */
  overlayXattrNamespace?: OverlayXattrNamespace;
  /**
   * `apply`: chown every entry (needs root). `record`: leave files owned by the caller and report the
   * layer's owners in the result, for rootless use. Default: `apply` as root, else `record`.
   */
  owners?: 'apply' | 'record';
  /** `create` device nodes (default as root), or `refuse` them with UNSUPPORTED (default otherwise). */
  devices?: 'create' | 'refuse';
  /** Non-fatal observations: overlay xattrs dropped from entries, xattrs the filesystem refused in record mode. */
  onWarning?: (message: string, path: string) => void;
}

/** An owner the layer asked for and a rootless apply recorded instead of applying. */
export interface OwnerRecord {
  path: string;
  uid: number;
  gid: number;
}

/** What an apply did. */
export interface ApplyResult extends LayerDigests {
  /** Entries applied, whiteouts and opaque markers included. */
  entries: number;
  /** In `record` mode, every entry whose owner is not 0:0. */
  owners: OwnerRecord[];
}

/** The xattr left on the target root while an in-place apply is under way; it stays if the apply fails. */
export const INCOMPLETE_XATTR = 'user.strata.incomplete';

/** True when `dir` carries the mark of an apply that did not finish. */
export function isApplyIncomplete(dir: string): boolean {
  return getXattr(dir, INCOMPLETE_XATTR) !== undefined;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false }); // absent is the common case: no Error per new file
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

function isWhiteoutDevice(st: Stats | undefined): boolean {
  return st !== undefined && st.isCharacterDevice() && st.rdev === 0;
}

/**
 * Applies the layer `source` (a path, stream or byte iterable; plain, gzip or zstd) onto `target`.
 *
 * Order-independent within a layer: an opaque marker hides only what came from below, wherever it stands
 * among its siblings; a whiteout never removes an entry the same layer adds; a hardlink may precede its
 * target. Duplicate paths in one layer: the last one wins. Directory modes and times are set after all
 * entries, so children cannot disturb them.
 *
 * State after an error: if `target` did not exist, the layer is extracted into a sibling staging directory
 * and renamed into place only on success, so after an error `target` still does not exist. If `target`
 * existed, it is changed in place: while the apply runs, and after it fails, its root carries the xattr
 * `user.strata.incomplete` (see `isApplyIncomplete`), so a half-applied target never looks complete.
 * Applying the same layer again completes it.
 *
 * Throws LAYER_FORMAT, UNSAFE_PATH, LIMIT_EXCEEDED and UNSUPPORTED (see `readLayer`), plus Node errno
 * errors from the filesystem.
 */
export async function applyLayer(source: ByteInput, target: string, options: ApplyOptions = {}): Promise<ApplyResult> {
  const existing = lstatOrUndefined(target);
  if (existing === undefined) {
    const staging = join(dirname(target), `.${basename(target)}.applying-${process.pid}-${Date.now()}`);
    mkdirSync(staging, { mode: 0o755 });
    try {
      const result = await applyInto(source, staging, options, true);
      renameSync(staging, target);
      return result;
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }
  if (!existing.isDirectory()) throw new LayerFormatError(`apply target is not a directory: ${target}`);
  const empty = readdirSync(target).length === 0;
  setXattr(target, INCOMPLETE_XATTR, Buffer.from('1'));
  const result = await applyInto(source, target, options, empty);
  removeXattr(target, INCOMPLETE_XATTR);
  return result;
}

/**
 * The apply itself. `fresh`: the target starts empty, so whether anything stands at a path is known from
 * what this apply created, without a syscall per entry.
 */
async function applyInto(source: ByteInput, target: string, options: ApplyOptions, fresh: boolean): Promise<ApplyResult> {
  // Absolute and normalised, so that a host path made by concatenation equals the one `join` makes.
  const root = resolve(target);
  const format = options.format ?? 'plain';
  const isRoot = process.getuid?.() === 0;
  const owners = options.owners ?? (isRoot ? 'apply' : 'record');
  const devices = options.devices ?? (isRoot ? 'create' : 'refuse');
  const opaqueName = opaqueXattr(options.overlayXattrNamespace ?? 'trusted');
  const warn = options.onWarning ?? (() => {});
  const reader = readLayer(source, options);

  /** Paths this layer put in place, and every ancestor of one: never removed by this layer's own deletions. */
  const touched = new Set<string>([ROOT]);
  /** Resolved directories known to be real directories in the target: skips re-resolving parents. */
  const knownDirs = new Set<string>([ROOT]);
  const directories = new Map<string, { hostPath: string; entry: Entry }>();
  const deferredLinks: Array<{ entry: Entry; hostPath: string }> = [];
  /** Paths this layer whited out: a directory it then makes there hides everything below (opaque). */
  const whitedOut = new Set<string>();
  const ownerRecords: OwnerRecord[] = [];
  let count = 0;
  /** In a fresh target: host paths this apply created (and has not removed). */
  const created = new Set<string>();
  const euid = process.geteuid?.() ?? -1;
  const egid = process.getegid?.() ?? -1;
  // New files get the caller's owner unless a directory's setgid bit intervenes; directories this apply
  // makes get their modes (setgid included) only at the end, so only the root's bit matters.
  const rootSetgid = (lstatSync(root).mode & 0o2000) !== 0;
  const ownerIsDefault = (entry: Entry) => fresh && !rootSetgid && entry.uid === euid && entry.gid === egid;

  /** The host path of a clean layer path (no `..` to normalise away: a concatenation, not `path.join`). */
  const hostPrefix = root === '/' ? root : `${root}/`;
  const hostPathOf = (layerPath: string): string => hostPrefix + layerPath;

  /** What stands at a resolved host path, or undefined. */
  const existing = (hostPath: string): Stats | undefined => (fresh && !created.has(hostPath) ? undefined : lstatOrUndefined(hostPath));
  const made = (hostPath: string): void => {
    if (fresh) created.add(hostPath);
  };

  const touch = (path: string): void => {
    for (let p = path; !touched.has(p); p = parentOf(p)) touched.add(p);
  };

  const forget = (layerPath: string): void => {
    for (const dir of knownDirs) if (dir !== ROOT && isWithin(dir, layerPath)) knownDirs.delete(dir);
  };

  /** Removes whatever stands at a resolved path; symlinks are removed, never followed. */
  const remove = (layerPath: string, hostPath: string, st: Stats): void => {
    if (st.isDirectory()) rmSync(hostPath, { recursive: true, force: true });
    else unlinkSync(hostPath);
    if (st.isDirectory() || st.isSymbolicLink()) forget(layerPath);
    if (fresh) {
      created.delete(hostPath);
      if (st.isDirectory()) for (const p of created) if (p.startsWith(`${hostPath}/`)) created.delete(p);
    }
  };

  /** Makes the missing directories of a resolved parent; a non-directory in the way is a format error. */
  const ensureDir = (layerPath: string, entryPath: string): void => {
    if (knownDirs.has(layerPath)) return;
    const chain: string[] = [];
    for (let p = layerPath; !knownDirs.has(p); p = parentOf(p)) chain.push(p);
    for (const p of chain.reverse()) {
      const hostPath = hostPathOf(p);
      const st = existing(hostPath);
      if (st !== undefined && isWhiteoutDevice(st) && whitedOut.has(p)) {
        unlinkSync(hostPath);
        whiteoutDevices.delete(p);
        mkdirSync(hostPath, { mode: 0o755 });
        markOpaque(p, hostPath);
      } else if (st === undefined) {
        mkdirSync(hostPath, { mode: 0o755 });
        made(hostPath);
      }
      else if (!st.isDirectory()) throw new LayerFormatError(`parent of ${entryPath} is not a directory: ${p}`, { path: entryPath });
      knownDirs.add(p);
    }
  };

  /** Resolves an entry path to the host, creating its parent directories. */
  const place = (path: string): { hostPath: string; layerPath: string } => {
    const parent = parentOf(path);
    if (knownDirs.has(parent)) return { hostPath: hostPathOf(path), layerPath: path };
    const resolved = resolveInRoot(root, path);
    ensureDir(parentOf(resolved.layerPath), path);
    return resolved;
  };

  /** Directories this layer made opaque: whiteouts beneath them hide nothing and are not written. */
  const opaqued = new Set<string>();
  /** Whiteout devices this layer wrote (overlay form), removed again if an opaque ancestor makes them redundant. */
  const whiteoutDevices = new Map<string, string>();
  const underOpaque = (path: string): boolean => {
    for (let p = parentOf(path); ; p = parentOf(p)) {
      if (opaqued.has(p)) return true;
      if (p === ROOT) return false;
    }
  };

  /**
   * In overlay form, records that a directory hides everything below it, and drops the whiteouts this
   * layer wrote beneath it: the kernel lists whiteouts inside a non-merged directory (their lookup fails),
   * and never writes that combination itself.
   */
  const markOpaque = (layerPath: string, hostPath: string): void => {
    if (format !== 'overlay') return;
    setXattr(hostPath, opaqueName, Buffer.from('y'));
    opaqued.add(layerPath);
    for (const [path, host] of whiteoutDevices) {
      if (path !== layerPath && isWithin(path, layerPath)) {
        unlinkSync(host);
        whiteoutDevices.delete(path);
        if (fresh) created.delete(host);
      }
    }
  };

  /** The owner to give `entry`, or undefined when there is nothing to change (recorded instead, rootless). */
  const ownerFor = (entry: Entry): Entry | undefined => {
    if (owners === 'record') {
      if (entry.uid !== 0 || entry.gid !== 0) ownerRecords.push({ path: entry.path, uid: entry.uid, gid: entry.gid });
      return undefined;
    }
    return ownerIsDefault(entry) ? undefined : entry;
  };

  const setOwner = (hostPath: string, entry: Entry, fd?: number): void => {
    if (ownerFor(entry) === undefined) return;
    if (fd !== undefined) fchownSync(fd, entry.uid, entry.gid);
    else lchownSync(hostPath, entry.uid, entry.gid);
  };

  const setXattrs = (hostPath: string, entry: Entry): void => {
    for (const [name, value] of entry.xattrs) {
      if (isOverlayXattr(name)) {
        warn(`dropping overlay xattr ${name}: a layer cannot set overlayfs markers`, entry.path);
        continue;
      }
      try {
        setXattr(hostPath, name, value);
      } catch (error) {
        if (owners !== 'record') throw error;
        warn(`xattr ${name} not set: ${(error as Error).message}`, entry.path);
      }
    }
  };

  /** Empties directory `dir` of everything this layer did not put there, recursively. */
  const prune = (dir: string, hostDir: string): void => {
    for (const name of readdirSync(hostDir)) {
      const path = childPath(dir, name);
      const hostPath = join(hostDir, name);
      const st = lstatSync(hostPath);
      if (!touched.has(path)) remove(path, hostPath, st);
      else if (st.isDirectory()) prune(path, hostPath);
    }
  };

  const whiteout = (path: string): void => {
    whitedOut.add(path);
    if (touched.has(path)) {
      // This layer put its own entry here; the whiteout still hides everything from below it.
      const { hostPath } = resolveInRoot(root, path);
      if (existing(hostPath)?.isDirectory()) opaque(path);
      return;
    }
    const { hostPath, layerPath } = resolveInRoot(root, path);
    const parent = dirname(hostPath) === root ? lstatSync(root) : existing(dirname(hostPath));
    if (parent !== undefined && !parent.isDirectory()) return; // nothing can stand below a non-directory
    if (parent === undefined) {
      if (format === 'plain') return; // nothing to delete
      ensureDir(parentOf(layerPath), path);
    }
    const st = existing(hostPath);
    if (st !== undefined) remove(layerPath, hostPath, st);
    if (format === 'overlay' && !underOpaque(path)) {
      mknod(hostPath, S_IFCHR, 0o000, 0, 0);
      whiteoutDevices.set(path, hostPath);
      made(hostPath);
      touch(path); // a later entry at this path replaces the whiteout device; a later whiteout must not remove it
    }
  };

  const opaque = (dir: string): void => {
    const { hostPath, layerPath } = place(dir);
    let st = layerPath === ROOT ? lstatSync(root) : existing(hostPath);
    if (st !== undefined && !st.isDirectory() && !touched.has(dir)) {
      remove(layerPath, hostPath, st);
      st = undefined;
    }
    if (st === undefined) {
      mkdirSync(hostPath, { mode: 0o755 });
      made(hostPath);
    }
    else if (st.isDirectory()) prune(layerPath, hostPath);
    else throw new LayerFormatError(`opaque marker inside a non-directory: ${dir}`, { path: dir });
    touch(dir);
    knownDirs.add(layerPath);
    markOpaque(dir, hostPath);
  };

  const link = (entry: Entry, hostPath: string): boolean => {
    const { hostPath: targetHost } = resolveInRoot(root, entry.linkname!);
    const st = existing(targetHost);
    if (st === undefined || (format === 'overlay' && isWhiteoutDevice(st))) return false;
    if (st.isDirectory()) throw new LayerFormatError(`hardlink to a directory: ${entry.path} -> ${entry.linkname}`, { path: entry.path });
    if (targetHost === hostPath) throw new LayerFormatError(`hardlink to itself: ${entry.path}`, { path: entry.path });
    linkSync(targetHost, hostPath);
    made(hostPath);
    return true;
  };

  const create = async (entry: Entry, body: AsyncIterable<Uint8Array>, hostPath: string, layerPath: string): Promise<void> => {
    const st = existing(hostPath);
    if (entry.type === 'directory') {
      if (st !== undefined && !st.isDirectory()) remove(layerPath, hostPath, st);
      if (st === undefined || !st.isDirectory()) {
        mkdirSync(hostPath, { mode: 0o700 });
        made(hostPath);
        if (whitedOut.has(entry.path)) markOpaque(entry.path, hostPath); // deleted and recreated: nothing below shows
      }
      knownDirs.add(layerPath);
      setOwner(hostPath, entry);
      setXattrs(hostPath, entry);
      directories.delete(entry.path); // duplicates: the last one wins
      directories.set(entry.path, { hostPath, entry });
      return;
    }
    if (st !== undefined) remove(layerPath, hostPath, st);
    if (entry.type !== 'hardlink') made(hostPath); // a hardlink is recorded once it exists
    switch (entry.type) {
      case 'file': {
        const chunks = body[Symbol.asyncIterator]();
        const first = await chunks.next();
        if (first.done === true || first.value.length === entry.size) {
          // The whole content in one chunk, as for most files: created and finished in one native call.
          writeNewFile(hostPath, first.done === true ? EMPTY : first.value, entry.mode, ownerFor(entry), entry.mtime);
          if (first.done !== true) await chunks.next(); // ends the body (the reader checks it was read through)
          setXattrs(hostPath, entry); // xattrs leave mtime alone; after the owner, which clears capabilities
          return;
        }
        const fd = openSync(hostPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
        try {
          for (let next: IteratorResult<Uint8Array> = first; next.done !== true; next = await chunks.next()) {
            const chunk = next.value;
            for (let written = 0; written < chunk.length; ) written += writeSync(fd, chunk, written);
          }
          setOwner(hostPath, entry, fd);
          fchmodSync(fd, entry.mode);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case 'symlink':
        symlinkSync(entry.linkname!, hostPath);
        setOwner(hostPath, entry);
        break;
      case 'hardlink':
        // A tar hardlink names an entry of its own layer, which may still be to come: until this layer has
        // written its target, link at the end, to the layer's entry if it came, else to what was below.
        if (!touched.has(entry.linkname!) || !link(entry, hostPath)) deferredLinks.push({ entry, hostPath });
        return; // a hardlink shares its target's metadata
      case 'char':
      case 'block':
      case 'fifo': {
        if (entry.type !== 'fifo' && devices === 'refuse') {
          throw new UnsupportedError(`device nodes are not permitted here: ${entry.path}`, { path: entry.path });
        }
        const typeBits = entry.type === 'char' ? S_IFCHR : entry.type === 'block' ? S_IFBLK : S_IFIFO;
        mknod(hostPath, typeBits, 0o600, entry.devmajor ?? 0, entry.devminor ?? 0);
        setOwner(hostPath, entry);
        chmodSync(hostPath, entry.mode);
        break;
      }
    }
    setXattrs(hostPath, entry);
    lutimens(hostPath, entry.mtime, entry.mtime);
  };

  for await (const { entry, body } of reader) {
    count++;
    const kind = classifyWhiteout(entry.path);
    if (kind.kind === 'aufs-meta') continue;
    if (kind.kind === 'whiteout') {
      whiteout(kind.target);
      continue;
    }
    if (kind.kind === 'opaque') {
      opaque(kind.dir);
      continue;
    }
    if (entry.path === ROOT) {
      if (entry.type !== 'directory') throw new LayerFormatError('the layer root must be a directory', { path: ROOT });
      setOwner(root, entry);
      setXattrs(root, entry);
      directories.set(ROOT, { hostPath: root, entry });
      continue;
    }
    const { hostPath, layerPath } = place(entry.path);
    await create(entry, body, hostPath, layerPath);
    touch(entry.path);
  }

  for (const { entry, hostPath } of deferredLinks) {
    const standing = existing(hostPath); // a later entry of the layer may have taken the name meanwhile
    if (standing !== undefined) remove(entry.path, hostPath, standing);
    if (!link(entry, hostPath)) {
      throw new LayerFormatError(`hardlink target not found: ${entry.path} -> ${entry.linkname}`, { path: entry.path });
    }
  }
  for (const { hostPath, entry } of directories.values()) {
    chmodSync(hostPath, entry.mode);
    lutimens(hostPath, entry.mtime, entry.mtime);
  }
  return { ...(await reader.digests()), entries: count, owners: ownerRecords };
}
