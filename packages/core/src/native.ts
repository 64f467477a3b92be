/**
 * The syscalls Node lacks, from our addon (`native/strata_native.c`): mknod, nanosecond utimensat, and the
 * l*xattr family; batched calls for hot paths; `FileHasher`, which hashes a file as it is written; and
 * `LayerWriter`, a native thread that writes a layer file.
 * Synchronous by design: each is a few cheap syscalls, cheaper than a thread-pool round trip, and none of
 * them ever follows a final symlink. Errors are Node-shaped (`code`, `syscall`, `path`). The exception is
 * `NativeDecoder`, gzip and zstd decompression on the thread pool.
 */
import { FailedPreconditionError } from './errors.js';
import { S_IFDIR } from './mode.js';
import { addonPath } from './package.js';

interface StrataNative {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lutimens(path: string, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  llistxattr(path: string): string[];
  lgetxattr(path: string, name: string): Buffer | undefined;
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  lremovexattr(path: string, name: string): void;
  lstatBatch(dir: string, names?: readonly string[]): LstatBatch;
  listDirSorted(dir: string): string[];
  readFileInto(path: string, buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeNewFile(path: string, data: Uint8Array, mode: number, uid: number, gid: number, mtimeSec: number, mtimeNsec: number): void;
  startWriteback(fd: number, offset: number, length: number): void;
  fileHasherCreate(path: string | null): bigint;
  fileHasherHash(handle: bigint, limit: number): number;
  fileHasherDigest(handle: bigint): string;
  fileHasherFree(handle: bigint): void;
  fileHasherRun(hasher: bigint, size: number): bigint;
  fileHashRunPoll(handle: bigint): boolean;
  fileHashRunFree(handle: bigint): void;
  layerWriterCreate(hasher: bigint, fd: number, durable: boolean): bigint;
  layerWriterPush(handle: bigint, chunk: Uint8Array, files?: ReadonlyArray<number | string>): void;
  layerWriterPoll(handle: bigint): [written: number, size: number];
  layerWriterClose(handle: bigint): void;
  layerWriterFree(handle: bigint, stop: boolean): void;
  openRoot(path: string): number;
  openDirAt(dirfd: number, path: string): number;
  statAt(dirfd: number, name: string, out: Float64Array): boolean;
  readlinkAt(dirfd: number, name: string): string;
  makeAt(dirfd: number, name: string, mode: number, major: number, minor: number): void;
  symlinkAt(target: string, dirfd: number, name: string): void;
  linkAt(fromDirfd: number, fromName: string, toDirfd: number, toName: string): void;
  removeAt(dirfd: number, name: string): void;
  unlinkAt(dirfd: number, name: string, directory: boolean): void;
  writeFileAt(dirfd: number, name: string, data: Uint8Array, mode: number, uid: number, gid: number, mtimeSec: number, mtimeNsec: number, createMode: number): void;
  createFileAt(dirfd: number, name: string, createMode: number): number;
  closeFd(fd: number): void;
  finishFile(fd: number, mode: number, uid: number, gid: number, mtimeSec: number, mtimeNsec: number): void;
  setAttrsAt(dirfd: number, name: string, uid: number, gid: number, mode: number, mtimeSec: number, mtimeNsec: number): void;
  setXattrAt(dirfd: number, name: string, key: string, value: Uint8Array): void;
  getXattrAt(dirfd: number, name: string, key: string): Buffer | undefined;
  removeXattrAt(dirfd: number, name: string, key: string): void;
  listDirAt(dirfd: number): string[];
  mountOverlay(target: string, lowers: readonly string[], upper: string | null, work: string | null, options: readonly string[]): void;
  mountBind(source: string, target: string, readonly: boolean): void;
  unmount(target: string, detach: boolean): void;
  diskUsage(path: string): [bytes: number, inodes: number];
  gzipDecoderCreate(): object | null;
  zstdDecoderCreate(): object | null;
  decoderRun(decoder: object, input: Uint8Array, output: Uint8Array): Promise<[consumed: number, produced: number, ended: boolean]>;
  ioBuffer(size: number): ArrayBuffer;
  sha256Create(): object;
  sha256Update(hash: object, bytes: Uint8Array): void;
  sha256Digest(hash: object): string;
  tarHeader(
    chunk: Uint8Array, at: number, path: string, linkname: string | undefined, typeflag: number, mode: number, uid: number, gid: number,
    size: number, mtimeSec: number, mtimeNsec: number, devmajor: number, devminor: number,
  ): number;
  tarHeaderFields(block: Uint8Array, out: Int32Array): number;
}

/**
 * lstat of several entries of one directory from one native call: `stats` holds `STAT.fields` numbers per
 * entry (mode 0: the entry vanished after it was listed); `links[i]` is a symlink's target and `xattrs[i]`
 * the entry's xattr names, each undefined when there is none.
 */
export interface LstatBatch {
  readonly names: readonly string[];
  readonly stats: Float64Array;
  readonly links: ReadonlyArray<string | undefined>;
  readonly xattrs: ReadonlyArray<readonly string[] | undefined>;
}

/** Offsets into `LstatBatch.stats` (the addon's field order). */
export const STAT = {
  mode: 0,
  uid: 1,
  gid: 2,
  nlink: 3,
  size: 4,
  mtimeSec: 5,
  mtimeNsec: 6,
  dev: 7,
  inoHigh: 8,
  inoLow: 9,
  rdevMajor: 10,
  rdevMinor: 11,
  ctimeSec: 12,
  ctimeNsec: 13,
  fields: 14,
} as const;

/**
 * Loaded as `require` loads a `.node` file, without its resolver: a fresh process runs that code cold, 1.5-2 ms
 * of every command's start for a path that is already absolute and real.
 */
function loadAddon(): StrataNative {
  const module = { exports: {} };
  process.dlopen(module, addonPath);
  return module.exports as StrataNative;
}

const addon = loadAddon();

/** Creates a device node or fifo. */
export function mknod(path: string, typeBits: number, perm: number, major = 0, minor = 0): void {
  addon.mknod(path, typeBits | perm, major, minor);
}

/** Sets atime and mtime of `path` itself (never a symlink's target) with nanosecond precision. */
export function lutimens(path: string, atime: { sec: number; nsec: number }, mtime: { sec: number; nsec: number }): void {
  addon.lutimens(path, atime.sec, atime.nsec, mtime.sec, mtime.nsec);
}

/**
 * A buffer for a pool that carries layer bytes (`native/io_buffer.c`): its pages are present from the start and
 * not write-protected by the forks that start child processes, so reusing it never faults.
 */
export const ioBuffer = (size: number): ArrayBuffer => addon.ioBuffer(size);

/**
 * A buffer to read files into again and again (a checksum's, a comparison's): page-aligned, where Node's
 * `Buffer.allocUnsafe` of a large size starts 16 bytes into a page, and the kernel copies a read into such
 * a buffer about five times slower on these VMs (see `native/io_buffer.c`). An `ioBuffer`, so made once and
 * kept, not per read.
 */
export function alignedBuffer(size: number): Buffer {
  return Buffer.from(ioBuffer(size));
}

const NO_XATTRS: ReadonlyMap<string, Uint8Array> = new Map();

/**
 * All extended attributes of `path`, names sorted, values as raw bytes. A filesystem without xattr
 * support yields an empty map. The common no-xattr case costs one syscall and no allocation.
 */
export function readXattrs(path: string): ReadonlyMap<string, Uint8Array> {
  return readXattrValues(path, addon.llistxattr(path));
}

/** The values of the xattrs `names` of `path` (as listed by `lstatBatch`), names sorted. */
export function readXattrValues(path: string, names: readonly string[] | undefined): ReadonlyMap<string, Uint8Array> {
  if (names === undefined || names.length === 0) return NO_XATTRS;
  const result = new Map<string, Uint8Array>();
  for (const name of [...names].sort()) {
    const value = addon.lgetxattr(path, name);
    if (value !== undefined) result.set(name, value);
  }
  return result;
}

/**
 * lstat of the entries `names` of directory `dir`, or of all its entries (in directory order) when `names`
 * is omitted, with symlink targets and xattr names. Throws Node-style errors (ENOENT, ENOTDIR on `dir`).
 */
export function lstatBatch(dir: string, names?: readonly string[]): LstatBatch {
  return names === undefined ? addon.lstatBatch(dir) : addon.lstatBatch(dir, names);
}

/** The names in directory `dir` in byte order (UTF-8, as `compareNames` orders them). Throws Node-style errors. */
export const listDirSorted = (dir: string): string[] => addon.listDirSorted(dir);

/**
 * Reads up to `length` bytes of the file at `path` (never following a final symlink) from `position` into
 * `buffer` at `offset`: open, read, close in one call. Returns the bytes read, short only at end of file.
 */
export function readFileInto(path: string, buffer: Uint8Array, offset: number, length: number, position: number): number {
  return addon.readFileInto(path, buffer, offset, length, position);
}

/**
 * Starts writing `length` bytes of `fd` from `offset` to disk without waiting for them, so that the fsync
 * that makes the file durable later waits for little (best effort: that fsync reports any failure).
 */
export function startWriteback(fd: number, offset: number, length: number): void {
  addon.startWriteback(fd, offset, length);
}

/**
 * Creates the file `path`, which must not exist (O_EXCL, never through a symlink), with content `data`,
 * owner `owner` (undefined: the caller's), permission bits `mode` (set after the owner, which clears
 * setuid bits) and atime and mtime `mtime`; one native call for what takes six Node calls.
 */
export function writeNewFile(path: string, data: Uint8Array, mode: number, owner: { uid: number; gid: number } | undefined, mtime: { sec: number; nsec: number }): void {
  addon.writeNewFile(path, data, mode, owner?.uid ?? -1, owner?.gid ?? -1, mtime.sec, mtime.nsec);
}

/**
 * The tar header blocks of an entry without xattrs or owner names, PAX header and records first where
 * needed, written at `chunk[at]` (`native/tar_header.c`): the bytes `TarWriter`'s JavaScript encoder writes
 * for it. Returns how many; -n when they would be n and fewer are left after `at` (nothing written); 0
 * when the JavaScript encoder has to write the entry (a name with a NUL, longer than a path, a lone
 * surrogate that is no escape, a negative id, size or device number). `typeflag` is the flag character's code.
 */
export function tarHeader(
  chunk: Uint8Array, at: number, path: string, linkname: string | undefined, typeflag: number, mode: number, uid: number, gid: number,
  size: number, mtime: { sec: number; nsec: number }, devmajor: number, devminor: number,
): number {
  return addon.tarHeader(chunk, at, path, linkname, typeflag, mode, uid, gid, size, mtime.sec, mtime.nsec, devmajor, devminor);
}

/**
 * Where `tarHeaderFields` puts a header's fields (keep in step with `native/tar_header.c`): byte fields as
 * lengths, the 12-byte numbers as two parts, `high * 2 ** 30 + low`.
 */
export const HEADER_FIELD = {
  mode: 0, uid: 1, gid: 2, sizeHigh: 3, sizeLow: 4, mtimeHigh: 5, mtimeLow: 6, devmajor: 7, devminor: 8, typeflag: 9,
  name: 10, linkname: 11, uname: 12, gname: 13, prefix: 14, count: 15,
} as const;

/**
 * Decodes a tar header block as `decodeHeader`'s JavaScript does (`native/tar_header.c`), its fields into
 * `out` (`HEADER_FIELD`; a pre-POSIX header's owner names and device numbers empty): 1 for POSIX ustar, 2
 * for GNU, 0 for pre-POSIX; -1, `out` undefined, where that JavaScript has to decide (a base-256 number, a
 * field that is no number, a checksum only a signed sum matches or none does). Int32s: V8 reads them as
 * small integers, where a Float64Array's elements come out boxed.
 */
export const tarHeaderFields = (block: Uint8Array, out: Int32Array): number => addon.tarHeaderFields(block, out);

/** One xattr of `path`, or undefined when absent. */
export function getXattr(path: string, name: string): Uint8Array | undefined {
  return addon.lgetxattr(path, name);
}

/** Sets one xattr on `path` itself. */
export function setXattr(path: string, name: string, value: Uint8Array): void {
  addon.lsetxattr(path, name, value);
}

/** Removes one xattr from `path` itself; absent is not an error. */
export function removeXattr(path: string, name: string): void {
  addon.lremovexattr(path, name);
}

/**
 * sha256 of bytes from memory, on this thread (`native/sha256.c`): what `node:crypto` does, without loading
 * its forty modules into a command that hashes one small layer. Dropped unfinished, the collector frees it.
 */
export class MemorySha256 {
  readonly #hash = addon.sha256Create();

  update(bytes: Uint8Array): void {
    addon.sha256Update(this.#hash, bytes);
  }

  /** Hex of everything added so far; the hash starts again empty after it. */
  digest(): string {
    return addon.sha256Digest(this.#hash);
  }
}

/**
 * sha256 of a file as it is written, read back from the page cache (see `native/strata_native.c`). The thread
 * writing the file and this one share it by `handle`: the writer reports what the file holds, and either
 * hashes the next stretch when it is free (see `createWritingSha256`). Without a `path`, it hashes what a
 * `LayerWriter` with no file feeds it from memory.
 */
export class FileHasher {
  readonly handle: bigint;
  #freed = false;

  constructor(path?: string) {
    this.handle = addon.fileHasherCreate(path ?? null);
  }

  /** Hashes up to `limit` more bytes of what is written: returns the bytes written but not hashed, or -1 when the other thread is hashing. */
  hashSome(limit: number): number {
    return addon.fileHasherHash(this.handle, limit);
  }

  /** Hashes the rest of what is written and returns the hex digest (once). */
  digest(): string {
    return addon.fileHasherDigest(this.handle);
  }

  /** Releases it; only once no other thread can use the handle any more. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    addon.fileHasherFree(this.handle);
  }
}

/**
 * A native thread hashing all `size` bytes of `hasher`'s file, from its first byte, apart from whatever
 * this thread reads of it (see `FileSha256`).
 */
export class FileHashRun {
  readonly #handle: bigint;
  #freed = false;

  constructor(hasher: FileHasher, size: number) {
    this.#handle = addon.fileHasherRun(hasher.handle, size);
  }

  /** True once the whole file is hashed; throws a failed read (EIO: the file holds less than `size`). */
  poll(): boolean {
    return addon.fileHashRunPoll(this.#handle);
  }

  /** Stops the thread (after its current turn) and waits for it; only then may the hasher be freed. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    addon.fileHashRunFree(this.#handle);
  }
}

/**
 * A native thread writing a layer file at `fd` (from its file position): chunks are written in the order
 * pushed, with host files' content spliced in, and the file is hashed through `hasher` (as written) by a
 * second native thread that follows the writing. With `fd` -1 (and a hasher without a path) it writes
 * nothing and hashes each chunk. A pushed chunk must not change until a poll counts it written. A
 * `durable` writer has the file on disk (fdatasync) before it reports finishing, and starts writeback
 * behind its writing so that the last sync waits for little.
 */
export class LayerWriter {
  readonly #handle: bigint;
  #freed = false;

  constructor(fd: number, hasher: FileHasher, durable = false) {
    this.#handle = addon.layerWriterCreate(hasher.handle, fd, durable);
  }

  /**
   * Queues `chunk`, with host files to splice in as a flat [at, path, size, offset, ...] list: `size` bytes
   * of the file from `offset`, then padding to a tar block, after byte `at` of the chunk.
   */
  push(chunk: Uint8Array, files?: ReadonlyArray<number | string>): void {
    this.#live().layerWriterPush(this.#handle, chunk, files);
  }

  /**
   * How many chunks were written since the last poll, and the file's size once the thread has finished
   * (else -1). Throws the first failure: Node-shaped, or code FAILED_PRECONDITION for a file that shrank.
   */
  poll(): [written: number, size: number] {
    return this.#live().layerWriterPoll(this.#handle);
  }

  /** No more chunks: the thread writes what it holds and finishes. */
  close(): void {
    this.#live().layerWriterClose(this.#handle);
  }

  /** Waits for the thread (stopping it first with `stop`); nothing is written after this returns. */
  free(stop: boolean): void {
    if (this.#freed) return;
    this.#freed = true;
    addon.layerWriterFree(this.#handle, stop);
  }

  #live(): StrataNative {
    if (this.#freed) throw new FailedPreconditionError('the layer writer was freed');
    return addon;
  }
}

// ---- Operations relative to directory descriptors (native/at.c) ---------------------------------------
// Each names one entry (a single component, or "" for the directory itself where allowed) of a directory
// held open by descriptor, and none follows a symlink standing at that entry: what apply uses so that a
// path it resolved earlier can never be redirected by what a layer puts in place later.

/** The target root, opened as a directory (symlinks in the caller's own path are followed). */
export const openRoot = (path: string): number => addon.openRoot(path);
/**
 * The directory `path` (relative; `.` for `dirfd` itself) below `dirfd`, reached without following any
 * symlink and without leaving `dirfd`: ELOOP when a component is a symlink, EXDEV for a climb out.
 */
export const openDirAt = (dirfd: number, path: string): number => addon.openDirAt(dirfd, path);
/** lstat of entry `name` ("" for the directory) into `out` (`STAT` fields); false when nothing is there. */
export const statAt = (dirfd: number, name: string, out: Float64Array): boolean => addon.statAt(dirfd, name, out);
export const readlinkAt = (dirfd: number, name: string): string => addon.readlinkAt(dirfd, name);
export const mkdirAt = (dirfd: number, name: string, mode: number): void => addon.makeAt(dirfd, name, S_IFDIR | mode, 0, 0);
/** A device node or fifo: `typeBits` is S_IFCHR, S_IFBLK or S_IFIFO. */
export const mknodAt = (dirfd: number, name: string, typeBits: number, perm: number, major = 0, minor = 0): void =>
  addon.makeAt(dirfd, name, typeBits | perm, major, minor);
export const symlinkAt = (target: string, dirfd: number, name: string): void => addon.symlinkAt(target, dirfd, name);
/** A new name for an existing entry (not followed, even if it is a symlink). */
export const linkAt = (fromDirfd: number, fromName: string, toDirfd: number, toName: string): void => addon.linkAt(fromDirfd, fromName, toDirfd, toName);
/** Removes what stands at `name` (a directory with everything below it, by descriptors); absent is fine. */
export const removeAt = (dirfd: number, name: string): void => addon.removeAt(dirfd, name);
/** unlink, or rmdir of an empty directory. */
export const unlinkAt = (dirfd: number, name: string, directory: boolean): void => addon.unlinkAt(dirfd, name, directory);
/**
 * Creates entry `name`, which must not exist (O_EXCL, never through a symlink), with `data`, owner (undefined:
 * the caller's), mode and atime = mtime, and closes it. `mode` is set after the owner (which clears setuid
 * bits), or, given as `{ atCreation }`, is the file's permission bits from its creation on (no special bits;
 * the umask applies), with no call after.
 */
export function writeFileAt(dirfd: number, name: string, data: Uint8Array, mode: FileMode, owner: { uid: number; gid: number } | undefined, mtime: { sec: number; nsec: number }): void {
  const later = typeof mode === 'number';
  addon.writeFileAt(dirfd, name, data, later ? mode : -1, owner?.uid ?? -1, owner?.gid ?? -1, mtime.sec, mtime.nsec, later ? -1 : mode.atCreation);
}
/** A mode to set once a new file is written, or the permission bits to create it with (see `writeFileAt`). */
export type FileMode = number | { readonly atCreation: number };
/**
 * A new file (O_EXCL, never through a symlink) open for writing: mode 0600 until `finishFile` sets `mode`, or
 * created with `mode.atCreation`'s permission bits (see `writeFileAt`).
 */
export const createFileAt = (dirfd: number, name: string, mode: FileMode): number => addon.createFileAt(dirfd, name, typeof mode === 'number' ? -1 : mode.atCreation);
/**
 * Closes a descriptor `openRoot`, `openDirAt` or `createFileAt` gave. Not `fs.closeSync`: in a worker thread
 * Node warns on stderr about each descriptor its fs closes that it did not open.
 */
export const closeFd = (fd: number): void => addon.closeFd(fd);
/**
 * Owner (undefined: leave), mode (left as created when given as `{ atCreation }`) and atime = mtime of an
 * open file, in that order.
 */
export function finishFile(fd: number, mode: FileMode, owner: { uid: number; gid: number } | undefined, mtime: { sec: number; nsec: number }): void {
  addon.finishFile(fd, typeof mode === 'number' ? mode : -1, owner?.uid ?? -1, owner?.gid ?? -1, mtime.sec, mtime.nsec);
}
/**
 * Owner, mode and times of entry `name` ("" for the directory itself), each left alone when undefined;
 * never through a symlink (and mode never on one).
 */
export function setAttrsAt(dirfd: number, name: string, attrs: { owner?: { uid: number; gid: number } | undefined; mode?: number | undefined; mtime?: { sec: number; nsec: number } | undefined }): void {
  const { owner, mode, mtime } = attrs;
  addon.setAttrsAt(dirfd, name, owner?.uid ?? -1, owner?.gid ?? -1, mode ?? -1, mtime?.sec ?? 0, mtime?.nsec ?? -1);
}
/** One xattr of entry `name` ("" for the directory itself), never through a symlink. */
export const setXattrAt = (dirfd: number, name: string, key: string, value: Uint8Array): void => addon.setXattrAt(dirfd, name, key, value);
export const getXattrAt = (dirfd: number, name: string, key: string): Uint8Array | undefined => addon.getXattrAt(dirfd, name, key);
/** Removes one xattr; absent is not an error. */
export const removeXattrAt = (dirfd: number, name: string, key: string): void => addon.removeXattrAt(dirfd, name, key);
/** The names in an open directory (not `.` or `..`), in directory order. */
export const listDirAt = (dirfd: number): string[] => addon.listDirAt(dirfd);

// ---- Mounts and disk usage (native/mount.c) ---------------------------------------------------------

export const mountOverlayNative = (target: string, lowers: readonly string[], upper: string | null, work: string | null, options: readonly string[]): void =>
  addon.mountOverlay(target, lowers, upper, work, options);
export const mountBindNative = (source: string, target: string, readonly: boolean): void => addon.mountBind(source, target, readonly);
export const unmountNative = (target: string, detach: boolean): void => addon.unmount(target, detach);
export const diskUsageNative = (path: string): [bytes: number, inodes: number] => addon.diskUsage(path);

// ---- Decompression on the thread pool (native/decode.c, gunzip.c, unzstd.c) -----------------------------

/**
 * A compressed stream's decoder whose calls run on the thread pool: gzip by ISA-L (members follow one
 * another; from a zero byte after a member on the rest is ignored, as node:zlib has it), zstd by the
 * system's libzstd (frames follow one another). Each library is loaded when first asked for; the factories
 * give undefined where it is not installed.
 */
export class NativeDecoder {
  readonly #native: object;

  private constructor(native: object) {
    this.#native = native;
  }

  static gzip(): NativeDecoder | undefined {
    const native = addon.gzipDecoderCreate();
    return native === null ? undefined : new NativeDecoder(native);
  }

  static zstd(): NativeDecoder | undefined {
    const native = addon.zstdDecoderCreate();
    return native === null ? undefined : new NativeDecoder(native);
  }

  /**
   * Decodes what it can of `input` into `output`: how much of each it used, and whether the input so far
   * is a whole stream. Neither buffer may change until it settles; one call at a time. Rejects with the
   * library's message for corrupt data.
   */
  run(input: Uint8Array, output: Uint8Array): Promise<[consumed: number, produced: number, ended: boolean]> {
    return addon.decoderRun(this.#native, input, output);
  }
}
