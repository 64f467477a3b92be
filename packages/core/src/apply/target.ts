/**
 * The directory an apply writes into, reached only through directory descriptors. Every operation names one
 * entry of a directory held open, and directories are opened from the root without following any symlink
 * (see native/at.c): a path resolved earlier can never be redirected by what the layer puts in place later,
 * so no step of an apply, deferred or not, can touch anything outside the root.
 *
 * Paths here are resolved layer paths: clean, and free of symlinks in every component but (possibly) the
 * last. `resolve` makes them from entry paths, following symlinks the way a process chrooted at the root
 * would and refusing any that leave it.
 *
 * Host state cache: open descriptors of recently used directories (tar order keeps them few), and, for a
 * target that started empty, what this apply created at each path, so that "what is there?" costs no system
 * call: not for the common new file, nor for each directory on the path of a new directory's first entry.
 * Removing a path forgets both below it. The cache decides nothing the host could contradict unseen: every
 * operation still goes through descriptors opened without following symlinks, so a directory swapped for
 * a symlink from outside is refused (UNSAFE_PATH), never followed.
 */
import { ftruncateSync } from 'node:fs';
import { FailedPreconditionError, fsError, LayerFormatError, UnsafePathError } from '../errors.js';
import type { Timestamp } from '../entry.js';
import { S_IFDIR, S_IFLNK, S_IFMT } from '../mode.js';
import { readUmask } from '../host/umask.js';
import { writeAll } from '../host/write-all.js';
import { isHole } from '../tar/sparse.js';
import {
  closeFd,
  createFileAt,
  finishFile,
  getXattrAt,
  linkAt,
  listDirAt,
  mkdirAt,
  mknodAt,
  openDirAt,
  openRoot,
  readlinkAt,
  removeAt,
  removeXattrAt,
  setAttrsAt,
  setXattrAt,
  STAT,
  statAt,
  symlinkAt,
  unlinkAt,
  writeFileAt,
  type FileMode,
} from '../native.js';
import { baseName, childPath, isWithin, parentOf, ROOT } from '../path.js';
import { quote } from '../quote.js';
import { resolvePath, type LookupResult } from '../resolve.js';
import { turn } from '../turns.js';
import { isWhiteoutDevice } from '../whiteout.js';
import { CreatedPaths } from './created-paths.js';

/** What stands at a path of the target. `whiteout` is a character device 0/0. */
export type HostKind = 'directory' | 'symlink' | 'whiteout' | 'other';

/** An owner to set, or undefined to leave the caller's. */
export type Owner = { readonly uid: number; readonly gid: number } | undefined;

/** The xattr holding a directory's default ACL, which entries created in it inherit. */
const DEFAULT_ACL = 'system.posix_acl_default';

/** Most directory descriptors kept open; tar order touches one directory at a time. */
const MAX_OPEN_DIRS = 128;

const RESOLVE_RULES = {
  followLast: false,
  aboveRoot: 'refuse',
  missingParent: 'lexical',
  fileParent: 'lexical',
} as const;

function isErrno(error: unknown): error is NodeJS.ErrnoException {
  return typeof (error as NodeJS.ErrnoException | undefined)?.syscall === 'string';
}

export class ApplyTarget {
  /** The root's host path, for messages. */
  readonly root: string;
  readonly #rootFd: number;
  /** Open descriptors of real directories, by resolved path, oldest first. */
  readonly #dirs = new Map<string, number>();
  /**
   * The directory most recently reached, and its descriptor (one of `#dirs`): tar order puts a directory's
   * entries together, so most entries ask for the one before theirs, and a comparison spares a lookup.
   */
  #lastDir: string | undefined;
  #lastFd = -1;
  /** For a target that started empty: what this apply created at each path and has not removed. */
  readonly #created: CreatedPaths<HostKind> | undefined;
  readonly #stat = new Float64Array(STAT.fields);
  /**
   * While new files can get their permission bits when created (see `#fileMode`): the umask those bits must
   * not meet. Until the first such file is checked, `#checked` is false.
   */
  #umask: number | undefined;
  #checked = false;
  /** The umask files were created under, once one was (see `confirmModes`). */
  #createdUnder: number | undefined;
  /** Called after a path (and, for a directory, everything below it) was removed. */
  onRemoved: (path: string, wasDirectory: boolean) => void = () => {};

  constructor(root: string, fresh: boolean) {
    this.root = root;
    this.#rootFd = openRoot(root);
    this.#created = fresh ? new CreatedPaths() : undefined;
    if (fresh) this.#umask = this.#rootHasDefaultAcl() ? undefined : readUmask();
  }

  /** True when the root carries a default ACL (which new entries below it inherit instead of the umask), or may. */
  #rootHasDefaultAcl(): boolean {
    try {
      return this.getXattr(ROOT, DEFAULT_ACL) !== undefined;
    } catch {
      return true; // unknown: assume the worst
    }
  }

  /**
   * How a new file gets `mode`. Created with permission bits 0600 and given its mode once written, as any
   * file, or (one call fewer per file, 47,000 fewer for /usr/share) created with its permission bits when the
   * kernel is sure to give it exactly those: the target started empty, so every directory is this apply's
   * and none has a default ACL (whose mask would replace the umask) until the layer sets one; the umask
   * takes none of the bits; and the mode has no setuid, setgid or sticky bit (which creation drops in some
   * directories, and a chown clears). The first such file is checked, in case the file system decides
   * modes its own way.
   */
  #fileMode(mode: number): FileMode {
    const umask = this.#umask;
    if (umask === undefined || (mode & (0o7000 | umask)) !== 0) return mode;
    this.#createdUnder = umask;
    return { atCreation: mode };
  }

  /**
   * Throws FAILED_PRECONDITION when the process's umask changed while files were created with their
   * permission bits (something else in the process set it): some may have fewer than their entries give, and
   * the apply fails rather than look complete. Applying the layer again sets every mode after writing.
   */
  confirmModes(): void {
    const under = this.#createdUnder;
    if (under === undefined || readUmask() === under) return;
    throw new FailedPreconditionError('the process umask changed while the apply created files: apply the layer again');
  }

  /** After the first file created with its permission bits: if it did not get exactly them, none is any more. */
  #checkCreated(path: string, mode: FileMode): void {
    if (this.#checked || typeof mode === 'number') return;
    this.#checked = true;
    const st = this.#stat;
    const found = this.#at(path, (fd, name) => statAt(fd, name, st));
    if (found && (st[STAT.mode]! & 0o7777) === mode.atCreation) return;
    this.#umask = undefined;
    this.setAttrs(path, { mode: mode.atCreation });
  }

  /** Closes every descriptor. */
  close(): void {
    for (const fd of this.#dirs.values()) closeFd(fd);
    this.#dirs.clear();
    this.#lastDir = undefined;
    closeFd(this.#rootFd);
  }

  /** A host-side failure as Node reports them, naming the host path instead of the bare entry name. */
  #fail(error: unknown, path: string): never {
    if (!isErrno(error)) throw error;
    const host = path === ROOT ? this.root : `${this.root}/${path}`;
    if (error.code === 'ELOOP' || error.code === 'EXDEV') {
      // A directory resolved earlier is now reached through a symlink: only something outside this apply
      // can have done that, and it is refused rather than followed.
      throw new UnsafePathError(`${quote(path)} changed under the apply (a symlink appeared on its path)`, { path, cause: error });
    }
    throw fsError(error.code ?? 'EIO', error.syscall!, host, error.message.split(',')[0]?.replace(/^[A-Z]+: /, ''));
  }

  // ---- resolution and directories -------------------------------------------------------------

  /**
   * The resolved path of entry path `path`: symlinks followed in every component but the last, inside the
   * root. Throws UNSAFE_PATH for a climb above the root or more than 40 symlinks.
   */
  resolve(path: string): string {
    if (this.#isKnownDir(parentOf(path))) return path; // a real directory: nothing to follow above it
    return resolvePath(path, (dir, name) => this.#lookup(dir, name), {
      ...RESOLVE_RULES,
      fail: (failure) =>
        new UnsafePathError(failure === 'loop' ? `too many symlinks resolving ${quote(path)}` : `${quote(path)} climbs above the root through a symlink`, { path }),
    });
  }

  #lookup(dir: string, name: string): LookupResult {
    const path = childPath(dir, name);
    const kind = this.kind(path);
    if (kind === undefined) return 'missing';
    if (kind === 'symlink') return { symlink: this.readlink(path) };
    return kind === 'directory' ? 'directory' : 'other';
  }

  /**
   * True when `dir`, as a resolved path, is known to name a real directory: one held open, or one this apply
   * made. Either way it has no symlink on its way either (one on it would be a removed directory, forgotten
   * with everything below it), so `dir` is resolved already.
   */
  #isKnownDir(dir: string): boolean {
    return dir === this.#lastDir || this.#dirs.has(dir) || this.#created?.get(dir) === 'directory';
  }

  /** The open descriptor of the real directory at resolved path `dir`, or undefined when there is none. */
  #openDir(dir: string): number | undefined {
    if (dir === this.#lastDir) return this.#lastFd;
    if (dir === ROOT) return this.#rootFd;
    const cached = this.#dirs.get(dir);
    if (cached !== undefined) {
      this.#lastDir = dir;
      this.#lastFd = cached;
      return cached;
    }
    if (this.#created !== undefined && this.#created.get(dir) !== 'directory') return undefined;
    let fd: number;
    try {
      fd = openDirAt(this.#rootFd, dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      this.#fail(error, dir);
    }
    this.#remember(dir, fd);
    return fd;
  }

  #remember(dir: string, fd: number): void {
    if (this.#dirs.size >= MAX_OPEN_DIRS) {
      const [oldest, oldFd] = this.#dirs.entries().next().value as [string, number];
      this.#dirs.delete(oldest);
      closeFd(oldFd);
    }
    this.#dirs.set(dir, fd);
    this.#lastDir = dir;
    this.#lastFd = fd;
  }

  /** The descriptor of the directory holding resolved path `path`; it must exist. */
  #parent(path: string): number {
    const fd = this.#openDir(parentOf(path));
    if (fd === undefined) throw new LayerFormatError(`parent of ${quote(path)} is not a directory`, { path });
    return fd;
  }

  /**
   * Makes sure resolved path `dir` is a directory, creating missing ones on the way (mode 0755). What stands
   * in the way is handed to `replace`, which may clear it (true) or not, in which case the entry that
   * needs the directory is a format error.
   */
  /** Called for each missing parent directory `ensureDir` makes (mode 0755, the caller's owner). */
  onParentMade: ((path: string) => void) | undefined;

  ensureDir(dir: string, entryPath: string, replace: (path: string, kind: HostKind) => boolean): number {
    const known = this.#openDir(dir);
    if (known !== undefined) return known;
    const missing: string[] = [];
    let fd: number | undefined;
    for (let p = dir; (fd = this.#openDir(p)) === undefined; p = parentOf(p)) missing.push(p);
    for (let i = missing.length - 1; i >= 0; i--) {
      const p = missing[i]!;
      const kind = this.kind(p);
      if (kind !== undefined && !replace(p, kind)) {
        throw new LayerFormatError(`parent of ${quote(entryPath)} is not a directory: ${quote(p)}`, { path: entryPath });
      }
      if (this.kind(p) === undefined) {
        this.mkdir(p, 0o755);
        this.onParentMade?.(p);
      }
      fd = this.#openDir(p);
      if (fd === undefined) throw new LayerFormatError(`parent of ${quote(entryPath)} is not a directory: ${quote(p)}`, { path: entryPath });
    }
    return fd;
  }

  /** Resolves entry path `path` and makes its parent directories (see `ensureDir`): its resolved path. */
  place(path: string, replace: (path: string, kind: HostKind) => boolean): string {
    const parent = parentOf(path);
    if (this.#isKnownDir(parent)) return path;
    const resolved = this.resolve(path);
    this.ensureDir(parentOf(resolved), path, replace);
    return resolved;
  }

  // ---- what is there ---------------------------------------------------------------------------

  /** What stands at resolved path `path` (never following it), or undefined. */
  kind(path: string): HostKind | undefined {
    if (path === ROOT) return 'directory';
    if (this.#created !== undefined) return this.#created.get(path);
    const fd = this.#openDir(parentOf(path));
    if (fd === undefined) return undefined;
    const st = this.#stat;
    let found: boolean;
    try {
      found = statAt(fd, baseName(path), st);
    } catch (error) {
      this.#fail(error, path);
    }
    if (!found) return undefined;
    const mode = st[STAT.mode]!;
    const type = mode & S_IFMT;
    if (type === S_IFDIR) return 'directory';
    if (type === S_IFLNK) return 'symlink';
    return isWhiteoutDevice(mode, st[STAT.rdevMajor]!, st[STAT.rdevMinor]!) ? 'whiteout' : 'other';
  }

  /** Runs `op` on the entry `path` names in its (open) parent directory; host failures as `#fail` reports them. */
  #at<T>(path: string, op: (dirfd: number, name: string) => T): T {
    try {
      return op(this.#parent(path), baseName(path));
    } catch (error) {
      this.#fail(error, path);
    }
  }

  readlink(path: string): string {
    return this.#at(path, readlinkAt);
  }

  /** The names in directory `dir`. */
  list(dir: string): string[] {
    const fd = this.#openDir(dir);
    if (fd === undefined) return [];
    try {
      return listDirAt(fd);
    } catch (error) {
      this.#fail(error, dir);
    }
  }

  /** One xattr of the entry at `path`, or undefined. */
  getXattr(path: string, key: string): Uint8Array | undefined {
    try {
      return path === ROOT ? getXattrAt(this.#rootFd, '', key) : getXattrAt(this.#parent(path), baseName(path), key);
    } catch (error) {
      this.#fail(error, path);
    }
  }

  // ---- changes ---------------------------------------------------------------------------------

  #made(path: string, kind: HostKind): void {
    this.#created?.set(path, kind);
  }

  // The calls made for nearly every entry (mkdir, writeFile, symlink, setAttrs) spell out `#at`'s try
  // instead of passing it a closure, which V8 allocated per call (about 0.5 MB of minbase's 17 MB).

  mkdir(path: string, mode: number): void {
    try {
      mkdirAt(this.#parent(path), baseName(path), mode);
    } catch (error) {
      this.#fail(error, path);
    }
    this.#made(path, 'directory');
  }

  /** A new file with all of `data`, its owner, mode and times, in one call. */
  writeFile(path: string, data: Uint8Array, mode: number, owner: Owner, mtime: Timestamp): void {
    const fileMode = this.#fileMode(mode);
    try {
      writeFileAt(this.#parent(path), baseName(path), data, fileMode, owner, mtime);
    } catch (error) {
      this.#fail(error, path);
    }
    this.#made(path, 'other');
    this.#checkCreated(path, fileMode);
  }

  /** A new file written from `chunks` (a sparse file's holes left as holes), then given its owner, mode and times. */
  async writeFileFrom(path: string, chunks: AsyncIterator<Uint8Array>, first: Uint8Array, mode: number, owner: Owner, mtime: Timestamp): Promise<void> {
    const fileMode = this.#fileMode(mode);
    const fd = this.#at(path, (dirfd, name) => createFileAt(dirfd, name, fileMode));
    this.#made(path, 'other');
    try {
      // A sparse file's holes are left unwritten, as GNU tar extracts them: written at their positions, the
      // data after a hole, then the size set, so a hole at the end is one too.
      let position = 0;
      let holes = false;
      for (let chunk: Uint8Array | undefined = first; chunk !== undefined; ) {
        if (isHole(chunk)) holes = true;
        else writeAll(fd, chunk, position);
        position += chunk.length;
        const wait = turn();
        if (wait) await wait;
        const next = await chunks.next();
        chunk = next.done === true ? undefined : next.value;
      }
      if (holes) ftruncateSync(fd, position);
      finishFile(fd, fileMode, owner, mtime);
    } catch (error) {
      this.#fail(error, path);
    } finally {
      closeFd(fd);
    }
    this.#checkCreated(path, fileMode);
  }

  symlink(path: string, linkTarget: string): void {
    try {
      symlinkAt(linkTarget, this.#parent(path), baseName(path));
    } catch (error) {
      this.#fail(error, path);
    }
    this.#made(path, 'symlink');
  }

  /** A new name `path` for the existing entry at resolved path `existing` (a file, symlink or device). */
  link(existing: string, path: string): void {
    const from = this.#parent(existing);
    this.#at(path, (fd, name) => linkAt(from, baseName(existing), fd, name));
    this.#made(path, this.#created?.get(existing) ?? 'other');
  }

  mknod(path: string, typeBits: number, perm: number, major: number, minor: number): void {
    this.#at(path, (fd, name) => mknodAt(fd, name, typeBits, perm, major, minor));
    this.#made(path, isWhiteoutDevice(typeBits | perm, major, minor) ? 'whiteout' : 'other');
  }

  /** Owner, mode and times of the entry at `path` (each left alone when undefined), never through a symlink. */
  setAttrs(path: string, attrs: { owner?: Owner; mode?: number; mtime?: Timestamp }): void {
    try {
      if (path === ROOT) setAttrsAt(this.#rootFd, '', attrs);
      else setAttrsAt(this.#parent(path), baseName(path), attrs);
    } catch (error) {
      this.#fail(error, path);
    }
  }

  /** Sets one xattr; the host's refusal comes back as a Node errno error for the caller's policy. */
  setXattr(path: string, key: string, value: Uint8Array): void {
    // Files made below a default ACL get its mask, not the umask: from now on, modes are set after writing.
    if (key === DEFAULT_ACL) this.#umask = undefined;
    try {
      if (path === ROOT) setXattrAt(this.#rootFd, '', key, value);
      else setXattrAt(this.#parent(path), baseName(path), key, value);
    } catch (error) {
      if (isErrno(error)) throw fsError(error.code ?? 'EIO', 'setxattr', path === ROOT ? this.root : `${this.root}/${path}`);
      throw error;
    }
  }

  /** Removes one xattr, if it is there. */
  removeXattr(path: string, key: string): void {
    try {
      if (path === ROOT) removeXattrAt(this.#rootFd, '', key);
      else removeXattrAt(this.#parent(path), baseName(path), key);
    } catch (error) {
      this.#fail(error, path);
    }
  }

  /** Removes what stands at `path` (a directory with everything below it); symlinks are removed, never followed. */
  remove(path: string, kind: HostKind): void {
    this.#at(path, kind === 'directory' ? removeAt : (fd, name) => unlinkAt(fd, name, false));
    this.#forget(path, kind === 'directory');
    this.onRemoved(path, kind === 'directory');
  }

  #forget(path: string, directory: boolean): void {
    this.#created?.delete(path, directory);
    if (!directory) return;
    if (this.#lastDir !== undefined && isWithin(this.#lastDir, path)) this.#lastDir = undefined;
    for (const [dir, fd] of this.#dirs) {
      if (isWithin(dir, path)) {
        this.#dirs.delete(dir);
        closeFd(fd);
      }
    }
  }
}
