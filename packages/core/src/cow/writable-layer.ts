/**
 * WritableLayer: the container layer. An `fs/promises`-shaped API over a merged view of read-only lowers,
 * whose every change lands in one host directory, the upper, which stays a valid overlayfs upperdir at all
 * times: the same layer can be mounted by the kernel or diffed by the upper fast path.
 *
 * Semantics follow Linux overlayfs mounted with `index=off,redirect_dir=off,metacopy=off` (as containerd
 * mounts it, less `userxattr`), proven against the kernel by the differential suite:
 * - Copy-up: the first change to a lower entry (data or metadata) copies it into the upper (data by reflink
 *   where possible, then owner, mode, xattrs and times), after copying up its parent directories.
 * - Hardlinks: copy-up of one name of a lower hardlink set gives that name its own inode (index=off
 *   splits the set); `link` to a lower file copies it up first, then links in the upper.
 * - Deletion of anything that exists below writes a whiteout (char 0/0) in the upper; creating a directory
 *   where a whiteout stands makes it opaque (`trusted.overlay.opaque=y`, or `user.` with `userxattr`).
 * - Renaming a directory that has lower parts fails with EXDEV, as the kernel does without redirect_dir
 *   (tools like `mv` then copy); `renameDirectories: 'copy-up'` does that copy here instead.
 * - Our whiteouts are separate char 0/0 nodes; the kernel's may be hardlinks of one shared inode. Both read
 *   the same, here and in the kernel.
 *
 * Paths are container paths (`/etc/passwd` or `etc/passwd`); symlinks resolve inside the container root.
 * Errors are Node-shaped (`code`, `syscall`, `path`): ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EXDEV,
 * EINVAL, ELOOP, EPERM, EACCES, EBUSY. Filesystem work is synchronous underneath, one entry at a time.
 */
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { fsError } from '../errors.js';
import type { Timestamp } from '../entry.js';
import { lutimens, mknod, removeXattr, setXattr } from '../native.js';
import { fsPath } from '../name-bytes.js';
import { removeTree } from '../host/remove-tree.js';
import { writeAll } from '../host/write-all.js';
import { specialTypeBits, typeBitsOf } from '../mode.js';
import { resolvePath, type LookupResult } from '../resolve.js';
import { baseName, childPath, isWithin, parentOf, ROOT } from '../path.js';
import { HostLayer } from '../tree/host-layer.js';
import type { ContentReader, LayerTree, NodeStat, NodeType } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import { isOverlayXattr, isWhiteoutStats, opaqueXattr, OPAQUE_VALUE, WHITEOUT_DEVICE, type OverlayXattrNamespace } from '../whiteout.js';

/** Options of `WritableLayer`. */
export interface WritableLayerOptions {
  /** Namespace of the opaque marker written to the upper: `trusted` (default) or `user` (`userxattr` mounts). */
  xattrNamespace?: OverlayXattrNamespace;
  /** Renaming a directory with lower parts: `exdev` (default, as the kernel) or `copy-up` the subtree. */
  renameDirectories?: 'exdev' | 'copy-up';
  /** A read-only view, as a read-only mount: every change fails with EROFS and the upper is never written. */
  readOnly?: boolean;
}

/** The type tests of `fs.Stats` and `fs.Dirent`. */
export interface TypeChecks {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}

/** What `stat` and `lstat` return: the fields of `fs.Stats` that a layer defines. */
export interface LayerStats extends TypeChecks {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly mtime: Date;
  readonly mtimeMs: number;
  readonly mtimeNs: bigint;
  readonly rdev: number;
}

/** A directory entry, as `readdir(…, { withFileTypes: true })` gives it. */
export interface LayerDirent extends TypeChecks {
  readonly name: string;
  readonly parentPath: string;
}


function typeChecks(type: NodeType): TypeChecks {
  return {
    isFile: () => type === 'file',
    isDirectory: () => type === 'directory',
    isSymbolicLink: () => type === 'symlink',
    isCharacterDevice: () => type === 'char',
    isBlockDevice: () => type === 'block',
    isFIFO: () => type === 'fifo',
    isSocket: () => type === 'socket',
  };
}

function toStats(st: NodeStat): LayerStats {
  const ns = BigInt(st.mtime.sec) * 1_000_000_000n + BigInt(st.mtime.nsec);
  const ms = st.mtime.sec * 1000 + st.mtime.nsec / 1e6;
  return {
    mode: typeBitsOf(st.type) | st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    nlink: st.nlink,
    mtime: new Date(ms),
    mtimeMs: ms,
    mtimeNs: ns,
    rdev: st.type === 'char' || st.type === 'block' ? ((st.devmajor ?? 0) << 8) | (st.devminor ?? 0) : 0,
    ...typeChecks(st.type),
  };
}

function toTimestamp(time: number | string | Date | bigint): Timestamp {
  if (typeof time === 'bigint') {
    // Nanoseconds (what `lstat` gives as `mtimeNs`), kept exact where seconds in a double are not.
    const sec = time / 1_000_000_000n - (time % 1_000_000_000n < 0n ? 1n : 0n);
    return { sec: Number(sec), nsec: Number(time - sec * 1_000_000_000n) };
  }
  const seconds = time instanceof Date ? time.getTime() / 1000 : Number(time);
  const sec = Math.floor(seconds);
  return { sec, nsec: Math.round((seconds - sec) * 1e9) };
}

const UTF8 = new TextEncoder();

type Data = string | Uint8Array;

export class WritableLayer {
  /** The upper directory on the host. */
  readonly upperDir: string;
  /** The merged view: the upper on top of the lowers. */
  readonly view: MergedView;
  readonly #upper: HostLayer;
  readonly #opaqueName: string;
  readonly #renameDirectories: 'exdev' | 'copy-up';
  readonly #readOnly: boolean;

  /** `lowers` bottom first (as `MergedView` takes them); `upperDir` must exist (empty for a new container). */
  constructor(lowers: readonly LayerTree[], upperDir: string, options: WritableLayerOptions = {}) {
    this.upperDir = upperDir;
    const namespace = options.xattrNamespace ?? 'trusted';
    this.#upper = new HostLayer(upperDir, { whiteouts: 'overlay', xattrNamespace: namespace });
    this.view = new MergedView(lowers, this.#upper);
    this.#opaqueName = opaqueXattr(namespace);
    this.#renameDirectories = options.renameDirectories ?? 'exdev';
    this.#readOnly = options.readOnly ?? false;
  }

  /** True when changes fail with EROFS (see `WritableLayerOptions.readOnly`). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** Refuses a change to a read-only view, as a read-only mount does. */
  #writable(syscall: string, path: string): void {
    if (this.#readOnly) throw fsError('EROFS', syscall, path, 'read-only file system');
  }

  // ---- paths ---------------------------------------------------------------------------------------

  /**
   * Resolves a container path to a clean merged path, following symlinks in every component (and in the
   * last when `followLast`), by the container rules of `resolvePath`: `..` clamps at the root, ELOOP,
   * ENOENT and ENOTDIR as the kernel gives them (missing parents allowed with `allowMissing`).
   */
  #resolve(input: string, syscall: string, followLast: boolean, allowMissing = false): string {
    if (typeof input !== 'string' || input.includes('\0')) throw fsError('EINVAL', syscall, String(input));
    return resolvePath(input, this.#lookup, {
      followLast,
      aboveRoot: 'clamp',
      missingParent: allowMissing ? 'lexical' : 'error',
      fileParent: 'error',
      fail: (failure) => fsError(failure === 'loop' ? 'ELOOP' : failure === 'not-directory' ? 'ENOTDIR' : 'ENOENT', syscall, input),
    });
  }

  readonly #lookup = (dir: string, name: string): LookupResult => {
    const path = childPath(dir, name);
    const node = this.view.lookup(path);
    if (node === undefined) return 'missing';
    if (node.type === 'symlink') return { symlink: this.view.readlink(path) };
    return node.type === 'directory' ? 'directory' : 'other';
  };

  #host(path: string): string {
    return this.#upper.hostPath(path);
  }

  /**
   * Reports that the entry at `path` was made, removed, replaced or copied up: the upper's listing of its
   * parent is updated for that one name, and what the view resolved there is forgotten. Changes of an
   * upper entry's metadata or content need no report: no cache holds them.
   */
  #changed(path: string): void {
    if (path === ROOT) this.#upper.invalidate(ROOT);
    else this.#upper.refreshChild(parentOf(path), baseName(path));
    this.#upper.invalidate(path);
    this.view.invalidate(path);
  }

  /** Whether a lower layer shows an entry at `path` (so deleting it needs a whiteout). */
  #existsBelow(path: string): boolean {
    return this.view.shownFrom(path, 1); // layer 0 is the upper itself
  }

  /** Whether the upper holds a real entry (not a whiteout) at `path`. */
  #inUpper(path: string): boolean {
    if (path === ROOT) return true;
    const node = this.#upper.children(parentOf(path)).get(baseName(path));
    return node?.kind === 'entry';
  }

  // ---- copy-up -------------------------------------------------------------------------------------

  #applyMetadata(hostPath: string, st: NodeStat): void {
    lchownSync(fsPath(hostPath), st.uid, st.gid); // before chmod: chown clears setuid
    if (st.type !== 'symlink') chmodSync(fsPath(hostPath), st.mode);
    for (const [name, value] of st.xattrs) if (!isOverlayXattr(name)) setXattr(hostPath, name, value);
    lutimens(hostPath, st.mtime, st.mtime);
  }

  /** Makes `path` (visible in the merged view) an upper entry, copying up parents first. Returns its host path. */
  #copyUp(path: string): string {
    const host = this.#host(path);
    if (this.#inUpper(path)) return host;
    const node = this.view.lookup(path)!;
    this.#copyUp(parentOf(path));
    const layer = this.view.layers[node.layer]!;
    const st = layer.stat(path)!;
    const parentHost = dirname(host);
    const parentTimes = lstatSync(fsPath(parentHost), { bigint: true });
    switch (st.type) {
      case 'directory':
        mkdirSync(fsPath(host), { mode: 0o700 });
        break;
      case 'file':
        layer.copyFileTo(path, host);
        break;
      case 'symlink':
        symlinkSync(fsPath(st.linkname!), fsPath(host));
        break;
      case 'char':
      case 'block':
      case 'fifo':
        mknod(host, specialTypeBits(st.type), 0o600, st.devmajor ?? 0, st.devminor ?? 0);
        break;
      case 'socket':
        throw fsError('EPERM', 'copyup', path);
    }
    this.#applyMetadata(host, st);
    // Copy-up is not a change the user made to the parent: keep its times as they were.
    const pt = { sec: Number(parentTimes.mtimeNs / 1_000_000_000n), nsec: Number(parentTimes.mtimeNs % 1_000_000_000n) };
    if (path !== ROOT) lutimens(parentHost, pt, pt);
    this.#changed(path);
    return host;
  }

  /**
   * Prepares the upper for a new entry at `path`: parents copied up, a whiteout there removed (returns
   * whether there was one). What else stands in the upper there goes too, except, with `forRename`, a
   * non-directory, which rename replaces in one step.
   */
  #prepareCreate(path: string, forRename = false): boolean {
    this.#copyUp(parentOf(path));
    const host = this.#host(path);
    const existing = lstatSync(fsPath(host), { throwIfNoEntry: false });
    if (existing === undefined) return false;
    if (isWhiteoutStats(existing)) {
      unlinkSync(fsPath(host));
      return true;
    }
    // For a create nothing but a whiteout can stand here; a rename's target directory is empty (checked).
    if (!forRename || existing.isDirectory()) removeTree(host);
    return false;
  }

  /** Writes an overlay whiteout at host path `host`. */
  #whiteout(host: string): void {
    mknod(host, WHITEOUT_DEVICE.typeBits, WHITEOUT_DEVICE.perm, WHITEOUT_DEVICE.major, WHITEOUT_DEVICE.minor);
  }

  /** Removes `path` from the merged view: the upper entry goes, and a whiteout covers what is below. */
  #delete(path: string): void {
    const host = this.#host(path);
    const below = this.#existsBelow(path);
    if (below) this.#copyUp(parentOf(path));
    // A visible path is in the upper, below, or both: the upper entry goes, a whiteout covers what is below.
    if (this.#inUpper(path)) removeTree(host);
    if (below) this.#whiteout(host);
    this.#changed(path);
  }

  #need(path: string, syscall: string, input: string) {
    const node = this.view.lookup(path);
    if (!node) throw fsError('ENOENT', syscall, input);
    return node;
  }

  // ---- reading -------------------------------------------------------------------------------------

  /** `fs.promises.readFile`: a Buffer, or a string with an encoding. */
  async readFile(file: string, options?: BufferEncoding | { encoding?: BufferEncoding | null }): Promise<Buffer | string> {
    const path = this.#resolve(file, 'open', true);
    const node = this.#need(path, 'open', file);
    if (node.type === 'directory') throw fsError('EISDIR', 'read', file);
    const bytes = this.view.layers[node.layer]!.readAll(path);
    const data = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes); // a copy only for in-memory layers
    const encoding = typeof options === 'string' ? options : options?.encoding;
    return encoding ? data.toString(encoding) : data;
  }

  /** `fs.promises.readdir`: names, or entries with their types. */
  async readdir(dir: string, options?: { withFileTypes?: false }): Promise<string[]>;
  async readdir(dir: string, options: { withFileTypes: true }): Promise<LayerDirent[]>;
  async readdir(dir: string, options?: { withFileTypes?: boolean }): Promise<string[] | LayerDirent[]> {
    const path = this.#resolve(dir, 'scandir', true);
    const names = [...this.view.readdir(path)];
    if (!options?.withFileTypes) return names;
    return names.map((name) => ({ name, parentPath: dir, ...typeChecks(this.view.lookup(childPath(path, name))!.type) }));
  }

  /** `fs.promises.stat` (follows symlinks). */
  async stat(file: string): Promise<LayerStats> {
    const path = this.#resolve(file, 'stat', true);
    this.#need(path, 'stat', file);
    return toStats(this.view.stat(path)!);
  }

  /** `fs.promises.lstat`. */
  async lstat(file: string): Promise<LayerStats> {
    const path = this.#resolve(file, 'lstat', false);
    this.#need(path, 'lstat', file);
    return toStats(this.view.stat(path)!);
  }

  /** `fs.promises.readlink`. */
  async readlink(file: string): Promise<string> {
    const path = this.#resolve(file, 'readlink', false);
    this.#need(path, 'readlink', file);
    return this.view.readlink(path);
  }

  /** `fs.promises.access`: existence, and (as root sees it) execute permission. */
  async access(file: string, mode = fsConstants.F_OK): Promise<void> {
    const path = this.#resolve(file, 'access', true);
    const st = this.view.stat(path);
    if (!st) throw fsError('ENOENT', 'access', file);
    if (mode & fsConstants.X_OK && st.type !== 'directory' && (st.mode & 0o111) === 0) throw fsError('EACCES', 'access', file);
  }

  // ---- writing -------------------------------------------------------------------------------------

  /** Opens the upper copy of a file for writing (copying it up, or creating it), runs `fn`, closes it. */
  #withUpperFile<T>(file: string, syscall: string, flags: { create: boolean; exclusive?: boolean; truncate: boolean; mode?: number }, fn: (fd: number) => T): T {
    this.#writable(syscall, file);
    const path = this.#resolve(file, syscall, true);
    const node = this.view.lookup(path);
    let fd: number;
    if (node) {
      if (flags.exclusive) throw fsError('EEXIST', syscall, file);
      if (node.type === 'directory') throw fsError('EISDIR', syscall, file);
      const host = this.#copyUp(path);
      fd = openSync(fsPath(host), fsConstants.O_WRONLY | (flags.truncate ? fsConstants.O_TRUNC : 0) | fsConstants.O_NOFOLLOW);
    } else {
      if (!flags.create) throw fsError('ENOENT', syscall, file);
      if (path === ROOT) throw fsError('EISDIR', syscall, file);
      this.#prepareCreate(path);
      fd = openSync(fsPath(this.#host(path)), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, flags.mode ?? 0o666);
    }
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
      this.#changed(path);
    }
  }

  /** `fs.promises.writeFile`. */
  async writeFile(file: string, data: Data, options?: { mode?: number; flag?: string } | BufferEncoding): Promise<void> {
    const opts = typeof options === 'string' ? {} : (options ?? {});
    const flag = opts.flag ?? 'w';
    const bytes = typeof data === 'string' ? UTF8.encode(data) : data;
    this.#withUpperFile(file, 'open', { create: true, exclusive: flag.includes('x'), truncate: !flag.startsWith('a'), ...(opts.mode !== undefined ? { mode: opts.mode } : {}) }, (fd) => {
      const position = flag.startsWith('a') ? fstatSync(fd).size : 0;
      writeAll(fd, bytes, position);
    });
  }

  /** `fs.promises.appendFile`. */
  async appendFile(file: string, data: Data, options?: { mode?: number }): Promise<void> {
    await this.writeFile(file, data, { flag: 'a', ...(options?.mode !== undefined ? { mode: options.mode } : {}) });
  }

  /** `fs.promises.truncate`. */
  async truncate(file: string, length = 0): Promise<void> {
    this.#withUpperFile(file, 'open', { create: false, truncate: false }, (fd) => ftruncateSync(fd, length));
  }

  /** `fs.promises.mkdir`; with `recursive`, returns the first directory made. */
  async mkdir(dir: string, options?: { recursive?: boolean; mode?: number } | number): Promise<string | undefined> {
    this.#writable('mkdir', dir);
    const opts = typeof options === 'number' ? { mode: options } : (options ?? {});
    const mode = opts.mode ?? 0o777;
    if (opts.recursive) {
      const path = this.#resolve(dir, 'mkdir', true, true); // missing parents are what it makes
      const missing: string[] = [];
      for (let p = path; p !== ROOT; p = parentOf(p)) {
        const node = this.view.lookup(p);
        if (node?.type === 'directory') break;
        if (node) throw fsError(p === path ? 'EEXIST' : 'ENOTDIR', 'mkdir', dir);
        missing.push(p);
      }
      for (const p of missing.reverse()) this.#mkdirOne(p, mode);
      return missing.length > 0 ? `/${missing[0]}` : undefined;
    }
    const path = this.#resolve(dir, 'mkdir', false);
    if (this.view.lookup(path)) throw fsError('EEXIST', 'mkdir', dir);
    this.#mkdirOne(path, mode);
    return undefined;
  }

  #mkdirOne(path: string, mode: number): void {
    const overWhiteout = this.#prepareCreate(path);
    const host = this.#host(path);
    mkdirSync(fsPath(host), { mode });
    // A directory where something below was deleted must not show what is below.
    if (overWhiteout || this.#existsBelow(path)) setXattr(host, this.#opaqueName, OPAQUE_VALUE);
    this.#changed(path);
  }

  /** `fs.promises.symlink`. */
  async symlink(target: string, file: string): Promise<void> {
    this.#writable('symlink', file);
    const path = this.#resolve(file, 'symlink', false);
    if (this.view.lookup(path)) throw fsError('EEXIST', 'symlink', file);
    this.#prepareCreate(path);
    symlinkSync(fsPath(target), fsPath(this.#host(path)));
    this.#changed(path);
  }

  /**
   * A device node or FIFO at `file`: `mode` holds its type bits (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`) and
   * permissions, as mknod(2) takes them. EEXIST when something is there.
   */
  async mknod(file: string, mode: number, major = 0, minor = 0): Promise<void> {
    this.#writable('mknod', file);
    const type = mode & fsConstants.S_IFMT;
    if (type !== fsConstants.S_IFCHR && type !== fsConstants.S_IFBLK && type !== fsConstants.S_IFIFO) throw fsError('EINVAL', 'mknod', file);
    const path = this.#resolve(file, 'mknod', false);
    if (this.view.lookup(path)) throw fsError('EEXIST', 'mknod', file);
    this.#prepareCreate(path);
    mknod(this.#host(path), type, mode & 0o7777, major, minor);
    this.#changed(path);
  }

  /** `fs.promises.link`: a new name for an existing non-directory (copied up first). */
  async link(existing: string, file: string): Promise<void> {
    this.#writable('link', file);
    const from = this.#resolve(existing, 'link', false);
    const node = this.#need(from, 'link', existing);
    const to = this.#resolve(file, 'link', false);
    if (this.view.lookup(to)) throw fsError('EEXIST', 'link', file); // checked before the directory, as Linux does
    if (node.type === 'directory') throw fsError('EPERM', 'link', existing);
    const source = this.#copyUp(from);
    this.#prepareCreate(to);
    linkSync(fsPath(source), fsPath(this.#host(to)));
    this.#changed(to);
    this.#changed(from);
  }

  /** `fs.promises.unlink`. */
  async unlink(file: string): Promise<void> {
    this.#writable('unlink', file);
    const path = this.#resolve(file, 'unlink', false);
    const node = this.#need(path, 'unlink', file);
    if (node.type === 'directory') throw fsError('EISDIR', 'unlink', file);
    this.#delete(path);
  }

  /** `fs.promises.rmdir`. */
  async rmdir(dir: string): Promise<void> {
    this.#writable('rmdir', dir);
    const path = this.#resolve(dir, 'rmdir', false);
    const node = this.#need(path, 'rmdir', dir);
    if (node.type !== 'directory') throw fsError('ENOTDIR', 'rmdir', dir);
    if (path === ROOT) throw fsError('EBUSY', 'rmdir', dir);
    if (this.view.readdir(path).length > 0) throw fsError('ENOTEMPTY', 'rmdir', dir);
    this.#delete(path);
  }

  /** `fs.promises.rm`: `recursive` removes directories with their contents; `force` ignores absence. */
  async rm(file: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    this.#writable('rm', file);
    let path: string;
    try {
      path = this.#resolve(file, 'rm', false);
    } catch (error) {
      if (options.force && (error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const node = this.view.lookup(path);
    if (!node) {
      if (options.force) return;
      throw fsError('ENOENT', 'rm', file);
    }
    if (node.type !== 'directory') return this.#delete(path);
    if (!options.recursive) throw Object.assign(fsError('ERR_FS_EISDIR', 'rm', file, 'Path is a directory'), { code: 'ERR_FS_EISDIR' });
    if (path === ROOT) throw fsError('EBUSY', 'rm', file);
    this.#removeTree(path);
  }

  #removeTree(path: string): void {
    const node = this.view.lookup(path);
    if (node?.type === 'directory') for (const name of [...this.view.readdir(path)]) this.#removeTree(childPath(path, name));
    this.#delete(path);
  }

  /** `fs.promises.rename`, with the kernel's rules for directories (see the class notes). */
  async rename(oldFile: string, newFile: string): Promise<void> {
    this.#writable('rename', oldFile);
    const from = this.#resolve(oldFile, 'rename', false);
    const to = this.#resolve(newFile, 'rename', false);
    const node = this.#need(from, 'rename', oldFile);
    if (from === ROOT || to === ROOT) throw fsError('EBUSY', 'rename', oldFile);
    if (from === to) return;
    // Ancestry comes first in Linux: onto its own descendant is EINVAL, onto an ancestor ENOTEMPTY.
    if (isWithin(to, from)) throw fsError('EINVAL', 'rename', oldFile);
    if (isWithin(from, to)) throw fsError('ENOTEMPTY', 'rename', newFile);
    const target = this.view.lookup(to);
    const toParent = this.view.lookup(parentOf(to));
    if (!toParent) throw fsError('ENOENT', 'rename', newFile);
    if (toParent.type !== 'directory') throw fsError('ENOTDIR', 'rename', newFile);
    // Two names of one upper file (a hardlink): rename(2) does nothing and succeeds, both names stay.
    if (target && node.type !== 'directory' && target.type !== 'directory' && this.#inUpper(from) && this.#inUpper(to)) {
      const a = lstatSync(fsPath(this.#host(from)), { bigint: true });
      const b = lstatSync(fsPath(this.#host(to)), { bigint: true });
      if (a.ino === b.ino && a.dev === b.dev) return;
    }
    if (node.type === 'directory') {
      // The order of checks is Linux's: the VFS (EINVAL, ENOTDIR), then overlayfs (EXDEV), then emptiness.
      if (target && target.type !== 'directory') throw fsError('ENOTDIR', 'rename', newFile);
      const hasLowerParts = node.dirLayers.some((i) => i !== 0) || this.#existsBelow(from);
      if (hasLowerParts && this.#renameDirectories === 'exdev') throw fsError('EXDEV', 'rename', oldFile);
      if (target && this.view.readdir(to).length > 0) throw fsError('ENOTEMPTY', 'rename', newFile);
      if (hasLowerParts) return this.#renameByCopy(from, to);
    } else if (target?.type === 'directory') {
      throw fsError('EISDIR', 'rename', newFile);
    }
    const source = this.#copyUp(from);
    const belowFrom = this.#existsBelow(from);
    const belowTo = target !== undefined && this.#existsBelow(to);
    const overWhiteout = this.#prepareCreate(to, true);
    renameSync(fsPath(source), fsPath(this.#host(to)));
    // A directory moved into a merged directory is made opaque (as the kernel does): whatever a lower layer
    // has, or will have, at its new name must not show through.
    const mergedParent = (this.view.lookup(parentOf(to))?.dirLayers.length ?? 0) > 1;
    if (node.type === 'directory' && (belowTo || overWhiteout || mergedParent)) setXattr(this.#host(to), this.#opaqueName, OPAQUE_VALUE);
    if (belowFrom) this.#whiteout(source);
    this.#changed(from);
    this.#changed(to);
  }

  /** Renames a directory with lower parts by copying its merged subtree up to the new name, then deleting the old. */
  #renameByCopy(from: string, to: string): void {
    if (this.view.lookup(to)) this.#delete(to);
    const copy = (src: string, dst: string): void => {
      const st = this.view.stat(src)!;
      this.#prepareCreate(dst);
      const host = this.#host(dst);
      if (st.type === 'directory') {
        mkdirSync(fsPath(host), { mode: 0o700 });
        setXattr(host, this.#opaqueName, OPAQUE_VALUE); // holds exactly the merged contents
        this.#changed(dst);
        for (const name of this.view.readdir(src)) copy(childPath(src, name), childPath(dst, name));
      } else if (st.type === 'file') {
        this.view.layers[this.view.lookup(src)!.layer]!.copyFileTo(src, host);
      } else if (st.type === 'symlink') {
        symlinkSync(fsPath(st.linkname!), fsPath(host));
      } else {
        mknod(host, specialTypeBits(st.type), 0o600, st.devmajor ?? 0, st.devminor ?? 0);
      }
      this.#applyMetadata(host, st);
      this.#changed(dst);
    };
    copy(from, to);
    this.#removeTree(from);
  }

  /** `fs.promises.copyFile` (`COPYFILE_EXCL` honoured). */
  async copyFile(src: string, dest: string, mode = 0): Promise<void> {
    const data = (await this.readFile(src)) as Buffer;
    const st = await this.stat(src);
    await this.writeFile(dest, data, { flag: mode & fsConstants.COPYFILE_EXCL ? 'wx' : 'w', mode: st.mode & 0o7777 });
  }

  // ---- metadata ------------------------------------------------------------------------------------

  #metadata(file: string, syscall: string, follow: boolean, change: (host: string) => void): void {
    this.#writable(syscall, file);
    const path = this.#resolve(file, syscall, follow);
    this.#need(path, syscall, file);
    change(this.#copyUp(path)); // a copy-up reports itself; the change of metadata needs no report
  }

  /** `fs.promises.chmod` (follows symlinks). */
  async chmod(file: string, mode: number): Promise<void> {
    this.#metadata(file, 'chmod', true, (host) => chmodSync(fsPath(host), mode));
  }

  /** `fs.promises.chown` (follows symlinks). */
  async chown(file: string, uid: number, gid: number): Promise<void> {
    this.#metadata(file, 'chown', true, (host) => lchownSync(fsPath(host), uid, gid));
  }

  /** `fs.promises.lchown`. */
  async lchown(file: string, uid: number, gid: number): Promise<void> {
    this.#metadata(file, 'lchown', false, (host) => lchownSync(fsPath(host), uid, gid));
  }

  /** `fs.promises.utimes` (follows symlinks); a bigint is nanoseconds, exact (`lstat`'s `mtimeNs`). */
  async utimes(file: string, atime: number | string | Date | bigint, mtime: number | string | Date | bigint): Promise<void> {
    this.#metadata(file, 'utime', true, (host) => lutimens(host, toTimestamp(atime), toTimestamp(mtime)));
  }

  /** `fs.promises.lutimes`; a bigint is nanoseconds, as for `utimes`. */
  async lutimes(file: string, atime: number | string | Date | bigint, mtime: number | string | Date | bigint): Promise<void> {
    this.#metadata(file, 'lutime', false, (host) => lutimens(host, toTimestamp(atime), toTimestamp(mtime)));
  }

  /** Refuses what the kernel refuses before any copy-up: overlay-private names, `user.*` on anything but files and directories. */
  #checkXattr(file: string, name: string, syscall: string): void {
    if (isOverlayXattr(name)) throw fsError('EPERM', syscall, file);
    if (!name.startsWith('user.')) return;
    const node = this.view.lookup(this.#resolve(file, syscall, false));
    if (node && node.type !== 'file' && node.type !== 'directory') throw fsError('EPERM', syscall, file);
  }

  /** Sets an extended attribute on the entry itself (never through a symlink). Overlay-private names: EPERM. */
  async setxattr(file: string, name: string, value: Data): Promise<void> {
    this.#writable('setxattr', file);
    this.#checkXattr(file, name, 'setxattr');
    this.#metadata(file, 'setxattr', false, (host) => setXattr(host, name, typeof value === 'string' ? UTF8.encode(value) : value));
  }

  /** Removes an extended attribute; ENODATA when absent. */
  async removexattr(file: string, name: string): Promise<void> {
    this.#writable('removexattr', file);
    this.#checkXattr(file, name, 'removexattr');
    const path = this.#resolve(file, 'removexattr', false);
    const st = this.view.stat(path);
    if (!st) throw fsError('ENOENT', 'removexattr', file);
    if (!st.xattrs.has(name)) throw fsError('ENODATA', 'removexattr', file);
    this.#metadata(file, 'removexattr', false, (host) => removeXattr(host, name));
  }

  /** One extended attribute's value; ENODATA when absent. Overlay-private names are invisible, as in the kernel. */
  async getxattr(file: string, name: string): Promise<Buffer> {
    const path = this.#resolve(file, 'getxattr', false);
    const st = this.view.stat(path);
    if (!st) throw fsError('ENOENT', 'getxattr', file);
    const value = isOverlayXattr(name) ? undefined : st.xattrs.get(name);
    if (value === undefined) throw fsError('ENODATA', 'getxattr', file);
    return Buffer.from(value);
  }

  /** Names of the entry's extended attributes, sorted, overlay-private names left out. */
  async listxattr(file: string): Promise<string[]> {
    const path = this.#resolve(file, 'listxattr', false);
    const st = this.view.stat(path);
    if (!st) throw fsError('ENOENT', 'listxattr', file);
    return [...st.xattrs.keys()].filter((n) => !isOverlayXattr(n)).sort();
  }

  // ---- handles -------------------------------------------------------------------------------------

  /**
   * `fs.promises.open` with flags `r`, `r+`, `w`, `w+`, `a`, `a+`, `wx`: a handle whose writes land in the
   * upper copy of the file. Read-only handles on lower files read the layer's content without copy-up.
   */
  async open(file: string, flags: string = 'r', mode = 0o666): Promise<LayerFileHandle> {
    if (flags === 'r') {
      const path = this.#resolve(file, 'open', true);
      const node = this.#need(path, 'open', file);
      if (node.type === 'directory') throw fsError('EISDIR', 'read', file);
      return new LayerFileHandle(undefined, this.view.layers[node.layer]!.openContent(path), () => {});
    }
    this.#writable('open', file);
    const truncate = flags.startsWith('w');
    const create = !flags.startsWith('r');
    const append = flags.startsWith('a');
    const path = this.#resolve(file, 'open', true);
    const node = this.view.lookup(path);
    if (node && flags.includes('x')) throw fsError('EEXIST', 'open', file);
    if (!node && !create) throw fsError('ENOENT', 'open', file);
    if (node?.type === 'directory') throw fsError('EISDIR', 'open', file);
    let host: string;
    if (node) host = this.#copyUp(path);
    else {
      this.#prepareCreate(path);
      host = this.#host(path);
    }
    const fd = openSync(fsPath(host), (node ? 0 : fsConstants.O_CREAT | fsConstants.O_EXCL) | fsConstants.O_RDWR | (truncate ? fsConstants.O_TRUNC : 0) | (append ? fsConstants.O_APPEND : 0), mode);
    this.#changed(path);
    return new LayerFileHandle(fd, undefined, () => {}); // writes change content only: nothing to report
  }
}

/** A file handle from `WritableLayer.open`. */
export class LayerFileHandle {
  readonly #fd: number | undefined;
  /** Read-only handles: the content where it lies, in whichever layer (never copied up). */
  readonly #content: ContentReader | undefined;
  readonly #onChange: () => void;
  #position = 0;
  #closed = false;

  constructor(fd: number | undefined, content: ContentReader | undefined, onChange: () => void) {
    this.#fd = fd;
    this.#content = content;
    this.#onChange = onChange;
  }

  #check(syscall: string): void {
    if (this.#closed) throw fsError('EBADF', syscall, '<handle>');
  }

  /** Reads into `buffer`; `position` null reads from the current position. */
  async read(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    this.#check('read');
    const at = position ?? this.#position;
    let n: number;
    if (this.#fd !== undefined) n = readSync(this.#fd, buffer, offset, length, at);
    else n = this.#content!.read(buffer.subarray(offset, offset + length), at);
    if (position === null) this.#position += n;
    return { bytesRead: n, buffer };
  }

  /** Writes `data`; `position` null writes at the current position (or the end, for append handles). */
  async write(data: Data, position: number | null = null): Promise<{ bytesWritten: number }> {
    this.#check('write');
    if (this.#fd === undefined) throw fsError('EBADF', 'write', '<handle>');
    const bytes = typeof data === 'string' ? UTF8.encode(data) : data;
    const at = position ?? this.#position;
    writeAll(this.#fd, bytes, at);
    if (position === null) this.#position += bytes.length;
    this.#onChange();
    return { bytesWritten: bytes.length };
  }

  /** Truncates the file to `length`. */
  async truncate(length = 0): Promise<void> {
    this.#check('ftruncate');
    if (this.#fd === undefined) throw fsError('EBADF', 'ftruncate', '<handle>');
    ftruncateSync(this.#fd, length);
    this.#onChange();
  }

  /** Sets the mode of the open file. */
  async chmod(mode: number): Promise<void> {
    this.#check('fchmod');
    if (this.#fd === undefined) throw fsError('EBADF', 'fchmod', '<handle>');
    fchmodSync(this.#fd, mode);
    this.#onChange();
  }

  /** Sets the owner of the open file. */
  async chown(uid: number, gid: number): Promise<void> {
    this.#check('fchown');
    if (this.#fd === undefined) throw fsError('EBADF', 'fchown', '<handle>');
    fchownSync(this.#fd, uid, gid);
    this.#onChange();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#content?.close();
  }
}

