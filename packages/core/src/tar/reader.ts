/**
 * The tar entry parser: a stream of uncompressed tar bytes (ustar, POSIX/PAX, GNU long names) as entries,
 * each with a body to stream. Bytes only: where they come from, their compression and their digests are
 * `layer/read-layer.ts`'s business. Strict: every malformation and every unsafe name is a typed error.
 *
 * Where tar readers disagree, strata reads as the runtimes that will later extract the same layer do (Go's
 * archive/tar, under containerd and moby), so a scanner or builder using strata is shown the tree they write:
 * - directories, symlinks, hardlinks, devices and fifos carry no data, whatever their size field says;
 * - PAX global headers (`g`) are ignored, as containerd and moby ignore them;
 * - a ustar prefix in a GNU header (written by Go before 1.8) is read as Go reads it (see `header.ts`);
 * - a NUL in a PAX path, link path, user or group name, or in any PAX key, is refused, as Go refuses it;
 * - a PAX record with an empty value leaves the header's field in force, and a malformed PAX size, atime
 *   or ctime fails its entry even where the value goes unused, as in Go;
 * - only the old `\0` type flag with a name ending in `/` is a directory (pre-POSIX archives);
 * - GNU sparse files (old GNU `S` headers, PAX formats 0.0, 0.1 and 1.0) are files of their real size, their
 *   holes read as zeros (see `sparse.ts`); an old GNU one is a file, as GNU tar extracts it, where
 *   containerd and moby refuse its type flag.
 */
import { LayerFormatError, LimitExceededError, UnsupportedError } from '../errors.js';
import type { Entry, EntryType, Timestamp } from '../entry.js';
import { decodeName, nameByteLength } from '../name-bytes.js';
import { cleanEntryName } from '../path.js';
import { quote } from '../quote.js';
import { asciiText, decimal } from './ascii.js';
import type { ByteSource } from './byte-source.js';
import { BLOCK_SIZE, decodeHeader, isZeroBlock, type RawHeader } from './header.js';
import { decodePax, parsePaxTime } from './pax.js';
import { checkFragments, DataSparseMap, holeChunks, oldGnuSparse, oldGnuSparseExtension, paxSparse, type Fragment, type SparseFile } from './sparse.js';

/** Bounds that keep a hostile archive from exhausting memory or disk. */
export interface ReadLimits {
  /** Most entries (headers of real entries) in one layer. Default 10,000,000. */
  maxEntries?: number;
  /** Most content bytes over all entries. Default 1 TiB. */
  maxTotalBytes?: number;
  /** Longest path or link name, in bytes. Default 4,096 (Linux PATH_MAX). */
  maxPathBytes?: number;
  /** Largest PAX or GNU long-name record, in bytes. Default 1 MiB. */
  maxHeaderBytes?: number;
  /** Largest single xattr value, in bytes. Default 64 KiB (the Linux limit). */
  maxXattrBytes?: number;
}

export const DEFAULT_LIMITS: Required<ReadLimits> = {
  maxEntries: 10_000_000,
  maxTotalBytes: 2 ** 40,
  maxPathBytes: 4096,
  maxHeaderBytes: 1024 * 1024,
  maxXattrBytes: 64 * 1024,
};

/** Longest name of one path component, in bytes (Linux NAME_MAX): no file system takes more. */
const NAME_MAX = 255;
/** Largest uid or gid a host can give a file (2^32 - 1 means "no change" to chown). */
const MAX_ID = 2 ** 32 - 2;
/** Linux device numbers: 12 bits of major, 20 of minor. */
const MAX_MAJOR = 2 ** 12 - 1;
const MAX_MINOR = 2 ** 20 - 1;

/** One entry and its content. */
export interface TarEntry {
  readonly entry: Entry;
  /**
   * Archive offset of the entry's content (for indexing uncompressed layers); undefined for a sparse file,
   * whose content is not one range of the archive.
   */
  readonly dataOffset: number | undefined;
  /**
   * For a sparse file: its map, and the archive offset where the fragments' data lies, one after another in
   * map order (for reading it in place).
   */
  readonly sparse?: SparseLayout;
  /**
   * The content (`entry.size` bytes; empty for non-files). Read it before asking for the next entry, or
   * not at all: the reader skips what was not read. Reading it after moving on throws. Chunks are views
   * into the reader's buffers, which it reuses: a chunk is valid until the next one is requested, so copy
   * what you keep.
   */
  readonly body: EntryContent;
}

/** Where a sparse file's data lies in its archive: `fragments` in file order, stored from `dataOffset` on. */
export interface SparseLayout {
  readonly fragments: readonly Fragment[];
  readonly dataOffset: number;
}

/** An entry's content as chunks, or (when the reader already holds all of it) as one view without a promise. */
export interface EntryContent extends AsyncIterable<Uint8Array> {
  /**
   * The whole content when the reader's current chunk holds it (most small files), read through as
   * iterating would read it; undefined, having consumed nothing, when it does not. Valid as a chunk is.
   */
  takeBuffered(): Uint8Array | undefined;
}

/**
 * A name (of an entry, link, owner or group) from its bytes. Bytes that are not UTF-8 are kept as surrogate
 * escapes (see `name-bytes.ts`): containerd and Docker create such names with their bytes, and so does strata.
 */
function text(bytes: Uint8Array): string {
  return asciiText(bytes) ?? decodeName(bytes); // nearly every name is ASCII: no decoder
}

/** Entry types by type flag. `\0` is told apart from `0` for pre-POSIX directories (see `typeOf`). */
const TYPES: Record<string, EntryType> = {
  '\0': 'file',
  '0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  D: 'directory',
  '6': 'fifo',
};

/** Types whose size field says nothing about data that follows (Go's isHeaderOnlyType). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

/**
 * A PAX record for a header field, or undefined when the entry has none. A record with an empty value
 * leaves the header's field in force, as Go's archive/tar (containerd's and moby's reader) reads it.
 */
function paxField(records: Map<string, Uint8Array>, key: string): Uint8Array | undefined {
  const raw = records.get(key);
  return raw === undefined || raw.length === 0 ? undefined : raw;
}

/** A numeric PAX record (`[+-]digits`, as Go parses it): the number, or undefined when absent or empty. */
function paxNumber(records: Map<string, Uint8Array>, key: string): number | undefined {
  const raw = paxField(records, key);
  if (raw === undefined) return undefined;
  const negative = raw[0] === 0x2d;
  const value = decimal(raw, negative || raw[0] === 0x2b ? 1 : 0);
  if (value < 0) throw new LayerFormatError(`PAX ${key} is not a number: ${quote(Buffer.from(raw).toString('latin1'))}`);
  return negative && value !== 0 ? -value : value;
}

/** A PAX record that names something (path, link, user, group): text, and never with a NUL inside. */
function paxName(records: Map<string, Uint8Array>, key: string): Uint8Array | undefined {
  const raw = paxField(records, key);
  if (raw !== undefined && raw.includes(0)) throw new LayerFormatError(`PAX ${key} holds a NUL byte`);
  return raw;
}

/** A PAX time record as a timestamp, or undefined when absent or empty. */
function paxTime(records: Map<string, Uint8Array>, key: string): Timestamp | undefined {
  const raw = paxField(records, key);
  return raw === undefined ? undefined : parsePaxTime(text(raw));
}

/** Shared by every entry without PAX records or xattrs (most of them): no allocation per entry. */
const NO_RECORDS: Map<string, Uint8Array> = new Map();
const NO_XATTRS: ReadonlyMap<string, Uint8Array> = new Map();

function xattrsOf(records: Map<string, Uint8Array>, limits: Required<ReadLimits>): ReadonlyMap<string, Uint8Array> {
  if (records.size === 0) return NO_XATTRS;
  const xattrs = new Map<string, Uint8Array>();
  for (const [key, value] of records) {
    let name: string | undefined;
    let bytes = value;
    if (key.startsWith('SCHILY.xattr.')) name = key.slice('SCHILY.xattr.'.length);
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      try {
        name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      } catch {
        throw new LayerFormatError(`xattr name is not valid: ${quote(key)}`);
      }
      bytes = Buffer.from(Buffer.from(value).toString('latin1'), 'base64');
    }
    if (name === undefined) continue;
    if (name === '' || Buffer.byteLength(name) > 255 || name.includes('\0')) throw new LayerFormatError(`xattr name is not valid: ${quote(name)}`);
    if (bytes.length > limits.maxXattrBytes) {
      throw new LimitExceededError(`xattr ${quote(name)} is ${bytes.length} bytes, over the ${limits.maxXattrBytes}-byte limit`);
    }
    // Copy: the record views the reader's buffer, which is reused.
    xattrs.set(name, Uint8Array.from(bytes));
  }
  if (xattrs.size === 0) return NO_XATTRS;
  return xattrs.size < 2 ? xattrs : new Map([...xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Throws LIMIT_EXCEEDED when a component of `path` is longer than any file system takes. */
function checkComponents(path: string, bytes: number): void {
  if (bytes <= NAME_MAX) return;
  for (const part of path.split('/')) {
    if (part.length > NAME_MAX / 3 && nameByteLength(part) > NAME_MAX) {
      throw new LimitExceededError(`a name in ${quote(path)} is over ${NAME_MAX} bytes`, { path });
    }
  }
}

function checkId(value: number, what: string, path: string): number {
  if (value < 0 || value > MAX_ID) throw new LayerFormatError(`${what} ${value} of ${quote(path)} is out of range (0 to ${MAX_ID})`, { path });
  return value;
}

/** Names of the extended-header records, by type flag. */
const RECORDS: Record<string, string> = { x: 'PAX', g: 'PAX global', L: 'GNU long name', K: 'GNU long link' };

function padded(size: number): number {
  return Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
}

function truncated(): never {
  throw new LayerFormatError('truncated stream inside an extended header');
}

function trimNul(bytes: Uint8Array): Uint8Array {
  const end = bytes.indexOf(0);
  return end < 0 ? bytes : bytes.subarray(0, end);
}

function joinPrefix(prefix: Uint8Array, name: Uint8Array): Uint8Array {
  if (prefix.length === 0) return name;
  return Buffer.concat([prefix, Buffer.from('/'), name]);
}

/** The next block of `source`, read as the parse reads: a step to wait on only where it is not buffered. */
function* nextBlock(source: ByteSource, what: string): Generator<ParseStep, Uint8Array, unknown> {
  const block = source.readBuffered(BLOCK_SIZE) ?? ((yield source.read(BLOCK_SIZE)) as Uint8Array | undefined);
  if (block === undefined) throw new LayerFormatError(`truncated stream inside ${what}`);
  return block;
}

/** An old GNU sparse file (type `S`): the map in its header `block` and in the extension blocks after it. */
function* oldGnuSparseFile(block: Uint8Array, source: ByteSource, limits: Required<ReadLimits>): Generator<ParseStep, SparseFile, unknown> {
  const { size, fragments, extended } = oldGnuSparse(block);
  for (let more = extended, blocks = 1; more; blocks++) {
    if (blocks * BLOCK_SIZE > limits.maxHeaderBytes) throw new LimitExceededError(`sparse map over the ${limits.maxHeaderBytes}-byte limit`);
    more = oldGnuSparseExtension(yield* nextBlock(source, 'a sparse map'), fragments);
  }
  return { format: 'records', fragments, name: undefined, size };
}

/**
 * A sparse file's map checked against its real size and its `dataSize` bytes in the archive, the map read
 * first where it starts the data (PAX 1.0): the bytes its fragments take, which follow.
 */
function* sparseFragments(sparse: SparseFile, entry: Entry, dataSize: number, source: ByteSource, limits: Required<ReadLimits>): Generator<ParseStep, number, unknown> {
  let stored = dataSize;
  if (sparse.format === 'data') {
    const map = new DataSparseMap();
    for (let fragments: Fragment[] | undefined; fragments === undefined; ) {
      if (map.bytes + BLOCK_SIZE > dataSize) throw new LayerFormatError(`sparse map of ${quote(entry.path)} runs past its data`, { path: entry.path });
      if (map.bytes + BLOCK_SIZE > limits.maxHeaderBytes) throw new LimitExceededError(`sparse map over the ${limits.maxHeaderBytes}-byte limit`, { path: entry.path });
      fragments = map.add(yield* nextBlock(source, 'a sparse map'));
      if (fragments !== undefined) sparse.fragments = fragments;
    }
    stored -= map.bytes;
  }
  checkFragments(sparse.fragments, entry.size, stored, entry.path);
  return stored;
}

/**
 * The parse, one step at a time: each step an entry for the consumer, or a read the parse must wait for,
 * whose result is sent back into it (so the parse stays one loop, and waits only where bytes are missing).
 */
type ParseStep = TarEntry | Promise<unknown>;

/** Entries and content bytes a parse has passed, for its limits. */
interface ParseTotals {
  entries: number;
  bytes: number;
}

/**
 * The entry `header` describes, with the extended records before it applied (a sparse file's own name beats
 * a GNU long name, which beats a PAX path, as in Go's reader, and a PAX path beats the header), and the
 * size of its content in the archive: everything the parse decides about an entry without reading (a
 * sparse file's size is its real size; its stored fragments are `dataSize`). Outside the parse loop, which
 * V8 compiles as one unit, and again after each deoptimisation (a path first taken after it was compiled,
 * such as the first header that straddles two chunks): with this inside, each compile of that loop (then
 * an async generator) took 55-105 ms of a helper thread during a first layer.
 */
function describeEntry(
  header: RawHeader,
  records: Map<string, Uint8Array>,
  longName: Uint8Array | undefined,
  longLink: Uint8Array | undefined,
  limits: Required<ReadLimits>,
  totals: ParseTotals,
  sparse: SparseFile | undefined,
): { entry: Entry; dataSize: number } {
  // An old GNU sparse file (`S`) is a regular file, as GNU tar, bsdtar and Python extract it (containerd
  // and moby refuse the type flag after Go has read it).
  let type: EntryType | undefined = header.typeflag === 'S' ? 'file' : TYPES[header.typeflag];
  if (type === undefined) throw new UnsupportedError(`unknown tar entry type ${quote(header.typeflag)}`);
  const headerOnly = HEADER_ONLY.has(header.typeflag);

  const paxPath = paxName(records, 'path');
  const paxLink = paxName(records, 'linkpath');
  if (sparse?.name !== undefined && sparse.name.includes(0)) throw new LayerFormatError('PAX GNU.sparse.name holds a NUL byte');
  const nameBytes = sparse?.name ?? longName ?? paxPath ?? joinPrefix(header.prefix, header.name);
  const linkBytes = longLink ?? paxLink ?? header.linkname;
  if (nameBytes.length > limits.maxPathBytes || linkBytes.length > limits.maxPathBytes) {
    throw new LimitExceededError(`entry name over the ${limits.maxPathBytes}-byte limit`);
  }
  const rawName = text(nameBytes);
  if (header.typeflag === '\0' && rawName.endsWith('/')) type = 'directory'; // pre-POSIX directories
  const path = cleanEntryName(rawName);
  checkComponents(path, nameBytes.length);
  // Header-only types carry no data: their size field, even if set, is not followed by content. A PAX size
  // is read all the same, as Go reads it (a malformed one is refused there too).
  const paxSize = paxNumber(records, 'size');
  const dataSize = headerOnly || (header.typeflag === '\0' && type === 'directory') ? 0 : (paxSize ?? header.size);
  if (dataSize < 0) throw new LayerFormatError(`negative PAX size (${dataSize}) of ${quote(path)}`, { path });
  if (sparse !== undefined && type !== 'file') throw new LayerFormatError(`a sparse map on ${type} ${quote(path)}`, { path });
  const size = sparse?.size ?? dataSize;
  if (size < 0) throw new LayerFormatError(`negative sparse file size (${size}) of ${quote(path)}`, { path });
  if (++totals.entries > limits.maxEntries) throw new LimitExceededError(`more than ${limits.maxEntries} entries`, { path });
  totals.bytes += Math.max(size, dataSize); // a sparse file's holes count: whoever copies it writes them
  if (totals.bytes > limits.maxTotalBytes) throw new LimitExceededError(`content over the ${limits.maxTotalBytes}-byte limit`, { path });

  const linkText = linkBytes.length > 0 ? text(linkBytes) : undefined;
  let linkname: string | undefined;
  if (type === 'hardlink') {
    if (linkText === undefined) throw new LayerFormatError(`hardlink without a target: ${quote(rawName)}`, { path });
    linkname = cleanEntryName(linkText);
    checkComponents(linkname, linkBytes.length);
  } else if (type === 'symlink') {
    if (linkText === undefined) throw new LayerFormatError(`symlink without a target: ${quote(rawName)}`, { path });
    linkname = linkText;
  }
  const mtime: Timestamp = paxTime(records, 'mtime') ?? { sec: header.mtime, nsec: 0 };
  // Access and change times are not kept, but a malformed one fails the entry, as in Go's reader.
  if (records.size !== 0) {
    paxTime(records, 'atime');
    paxTime(records, 'ctime');
  }
  const unameBytes = paxName(records, 'uname');
  const gnameBytes = paxName(records, 'gname');
  const uname = unameBytes !== undefined ? text(unameBytes) : header.uname.length === 0 ? '' : text(header.uname);
  const gname = gnameBytes !== undefined ? text(gnameBytes) : header.gname.length === 0 ? '' : text(header.gname);
  // Built field by field, not with spreads: this runs once per entry, and spreads cost an object copy each.
  const entry: { -readonly [K in keyof Entry]: Entry[K] } = {
    path,
    type,
    mode: header.mode & 0o7777,
    uid: checkId(paxNumber(records, 'uid') ?? header.uid, 'uid', path),
    gid: checkId(paxNumber(records, 'gid') ?? header.gid, 'gid', path),
    size: type === 'file' ? size : 0,
    mtime,
    xattrs: xattrsOf(records, limits),
  };
  if (uname) entry.uname = uname;
  if (gname) entry.gname = gname;
  if (linkname !== undefined) entry.linkname = linkname;
  if (type === 'char' || type === 'block') {
    const major = paxNumber(records, 'SCHILY.devmajor') ?? header.devmajor;
    const minor = paxNumber(records, 'SCHILY.devminor') ?? header.devminor;
    if (major < 0 || major > MAX_MAJOR || minor < 0 || minor > MAX_MINOR) {
      throw new LayerFormatError(`device number ${major}:${minor} of ${quote(path)} is out of range (major 0 to ${MAX_MAJOR}, minor 0 to ${MAX_MINOR})`, { path });
    }
    entry.devmajor = major;
    entry.devminor = minor;
  }
  return { entry, dataSize };
}

/**
 * Where a parse gets its bytes: opened when iteration starts, closed when it ends (`finished`: after the
 * end-of-archive marker and the trailing bytes; false after an error or an early stop).
 */
export interface TarSource {
  open(): Promise<ByteSource>;
  close(finished: boolean): Promise<void>;
}

/**
 * Parses tar entries from `source` until the end-of-archive marker, then reads it to the end (trailing
 * bytes belong to the blob), or until the input ends between entries (at an entry's end or inside its
 * padding). See `TarEntryReader` for what it throws.
 */
function* parseSteps(source: ByteSource, limits: Required<ReadLimits>, signal: AbortSignal | undefined): Generator<ParseStep, void, unknown> {
  let pax: Map<string, Uint8Array> | undefined;
  let longName: Uint8Array | undefined;
  let longLink: Uint8Array | undefined;
  const totals: ParseTotals = { entries: 0, bytes: 0 };
  let sawHeader = false;

  /** An extended header's record, copied (the source reuses its buffers); a promise only when it spans chunks. */
  const readRecord = (header: RawHeader, what: string): Uint8Array | Promise<Uint8Array> => {
    if (header.size > limits.maxHeaderBytes) {
      throw new LimitExceededError(`${what} record is ${header.size} bytes, over the ${limits.maxHeaderBytes}-byte limit`);
    }
    const length = padded(header.size);
    const buffered = source.readBuffered(length);
    if (buffered !== undefined) return new Uint8Array(buffered.subarray(0, header.size));
    return source.read(length).then((data) => new Uint8Array((data ?? truncated()).subarray(0, header.size)));
  };

  for (;;) {
    signal?.throwIfAborted();
    const block = source.readBuffered(BLOCK_SIZE) ?? ((yield source.read(BLOCK_SIZE)) as Uint8Array | undefined);
    if (block === undefined || isZeroBlock(block)) {
      if (pax || longName || longLink) throw new LayerFormatError('archive ends after an extended header');
      // The input ends at an entry boundary (or inside its padding) without the end-of-archive blocks: the
      // end, as Go's reader takes it. Layers in the wild end so (umoci's insert wrote them, umoci#436), and
      // so does a layer of no bytes at all, an empty layer to Go and Docker (moby#18226). A stream cut there
      // cannot be told from them; a layer's digest and diffID are what tell.
      if (block === undefined) return;
      const second = (yield source.read(BLOCK_SIZE)) as Uint8Array | undefined;
      if (second !== undefined && !isZeroBlock(second)) throw new LayerFormatError('data after a single end-of-archive block');
      yield source.drain(); // trailing bytes are part of the blob and of its diffID
      return;
    }
    let header: RawHeader;
    try {
      header = decodeHeader(block);
    } catch (error) {
      if (!sawHeader) throw new LayerFormatError(`not a tar archive: ${(error as Error).message}`, { cause: error });
      throw error;
    }
    if (header.size < 0) throw new LayerFormatError(`negative size in a tar header (${header.size})`);
    sawHeader = true;
    const recordName = RECORDS[header.typeflag];
    if (recordName !== undefined) {
      if (header.typeflag === 'x' && pax) throw new LayerFormatError('two PAX headers for one entry');
      let record = readRecord(header, recordName);
      if (!(record instanceof Uint8Array)) record = (yield record) as Uint8Array;
      if (header.typeflag === 'x') {
        pax = decodePax(record);
        for (const key of pax.keys()) if (key.includes('\0')) throw new LayerFormatError(`PAX key holds a NUL byte: ${quote(key)}`);
      } else if (header.typeflag === 'g') {
        decodePax(record); // checked, then ignored (as containerd and moby do)
      } else if (header.typeflag === 'L') longName = trimNul(record);
      else longLink = trimNul(record);
      continue;
    }
    switch (header.typeflag) {
      case 'V': {
        const skipping = source.skip(padded(header.size));
        if (skipping) yield skipping;
        continue;
      }
      case 'M':
      case 'N':
        throw new UnsupportedError(`tar entry type ${quote(header.typeflag)} (multi-volume or old GNU long names) is not supported`);
    }
    const records = pax ?? NO_RECORDS;
    // A sparse file's map (see `sparse.ts`), in generators of their own: the loop stays small for V8.
    const sparse = header.typeflag === 'S' ? yield* oldGnuSparseFile(block, source, limits) : records.size !== 0 ? paxSparse(records) : undefined;
    const { entry, dataSize } = describeEntry(header, records, longName, longLink, limits, totals, sparse);
    pax = longName = longLink = undefined;
    const stored = sparse === undefined ? dataSize : yield* sparseFragments(sparse, entry, dataSize, source, limits);

    const dataOffset = sparse === undefined ? source.position : undefined;
    const body = new EntryBody(source, entry.size, entry.path, stored, sparse?.fragments);
    yield sparse === undefined ? { entry, dataOffset, body } : { entry, dataOffset, sparse: { fragments: sparse.fragments, dataOffset: source.position }, body };
    const consumed = body.close();
    const skipping = source.skip(stored - consumed);
    if (skipping) yield skipping; // only when the source cannot seek: most skips are done here and now
    // The padding is read through, never sought past: a stream that ends inside it, after the last entry's
    // data, ends there, as Go reads it (Debian's umoci 0.4.7 `insert` writes such layers).
    const padding = source.skipUpTo(padded(dataSize) - dataSize);
    if (padding) yield padding;
  }
}

/**
 * The entries of a tar stream, in archive order with clean paths (see `cleanEntryName`). `take()` hands out
 * each entry as soon as it is parsed: at once while the bytes it needs are buffered (nearly every entry of a
 * layer), a promise only when the parse waits for a read. An apply takes thousands of entries a layer, and
 * a promise and a turn of the microtask queue for each cost more than parsing it. It is also an async
 * iterator (one promise an entry) for everyone else.
 *
 * Whoever stops before the end calls `return()`, which closes the input (a `for await` loop does so itself).
 *
 * Throws LAYER_FORMAT (checksum, a stream cut inside a header or an entry's data, malformed PAX or sparse
 * maps, invalid UTF-8 or NUL in names, ids and device numbers out of range), UNSAFE_PATH (`..` in names or
 * hardlink targets), LIMIT_EXCEEDED (see `ReadLimits`, and names over 255 bytes), UNSUPPORTED
 * (multi-volume archives, unknown entry types).
 */
export class TarEntryReader implements AsyncIterableIterator<TarEntry> {
  readonly #input: TarSource;
  readonly #limits: Required<ReadLimits>;
  readonly #signal: AbortSignal | undefined;
  #steps: Generator<ParseStep, void, unknown> | undefined;
  /** The take under way while the parse waits for a read: a take asked meanwhile runs after it. */
  #waiting: Promise<void> | undefined;
  #closed = false;

  constructor(input: TarSource, limits: Required<ReadLimits>, signal?: AbortSignal) {
    this.#input = input;
    this.#limits = limits;
    this.#signal = signal;
  }

  /**
   * The next entry, or undefined after the last (once the input was read to its end and closed). Read the
   * previous entry's body before, or not at all (see `TarEntry`). After an error the input is closed, and
   * every later call says undefined.
   */
  take(): TarEntry | undefined | Promise<TarEntry | undefined> {
    if (this.#waiting !== undefined) return this.#waiting.then(() => this.take());
    const next = this.#steps === undefined ? this.#open() : this.#step(undefined);
    if (next instanceof Promise) {
      const settled = (): void => {
        if (this.#waiting === waiting) this.#waiting = undefined;
      };
      const waiting: Promise<void> = next.then(settled, settled);
      this.#waiting = waiting;
    }
    return next;
  }

  async #open(): Promise<TarEntry | undefined> {
    if (this.#closed) return undefined;
    let source: ByteSource;
    try {
      source = await this.#input.open();
    } catch (error) {
      return this.#fail(error);
    }
    if (this.#closed) {
      await this.#input.close(false); // stopped while it opened: what it opened goes too
      return undefined;
    }
    this.#steps = parseSteps(source, this.#limits, this.#signal);
    return this.#step(undefined);
  }

  /** Runs the parse on to its next entry, `sent` being the result of the read it last waited for. */
  #step(sent: unknown): TarEntry | undefined | Promise<TarEntry | undefined> {
    if (this.#closed) return undefined;
    let step: IteratorResult<ParseStep, void>;
    try {
      step = this.#steps!.next(sent);
    } catch (error) {
      return this.#fail(error);
    }
    if (step.done === true) return this.#close(true).then(() => undefined);
    const value = step.value;
    if (value instanceof Promise) {
      return value.then(
        (result) => this.#step(result),
        (error: unknown) => this.#fail(error),
      );
    }
    return value;
  }

  async #fail(error: unknown): Promise<never> {
    await this.#close(false);
    throw error;
  }

  async #close(finished: boolean): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#steps?.return();
    await this.#input.close(finished);
  }

  async next(): Promise<IteratorResult<TarEntry, undefined>> {
    const entry = await this.take();
    return entry === undefined ? { done: true, value: undefined } : { done: false, value: entry };
  }

  /** Stops early: the input is closed as unfinished (nothing happens after the end). */
  async return(): Promise<IteratorResult<TarEntry, undefined>> {
    await this.#close(false);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * An entry's content: readable once, while the reader is still at that entry. A sparse file's is its
 * stored fragments with its holes between them, as chunks of shared zeros (see `isHole`).
 */
class EntryBody implements EntryContent {
  #state: 'unread' | 'reading' | 'done' | 'closed' = 'unread';
  readonly #source: ByteSource;
  readonly #size: number;
  readonly #path: string;
  /** Bytes a sparse file's fragments take in the archive. */
  readonly #stored: number;
  readonly #fragments: readonly Fragment[] | undefined;

  constructor(source: ByteSource, size: number, path: string, stored: number, fragments: readonly Fragment[] | undefined) {
    this.#source = source;
    this.#size = size;
    this.#path = path;
    this.#stored = stored;
    this.#fragments = fragments;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#state !== 'unread') throw new LayerFormatError(`body of ${quote(this.#path)} was already read or skipped`, { path: this.#path });
    this.#state = 'reading';
    if (this.#fragments === undefined) yield* this.#source.chunks(this.#size);
    else {
      let position = 0;
      for (const { offset, length } of this.#fragments) {
        if (length === 0) continue;
        yield* holeChunks(offset - position);
        yield* this.#source.chunks(length);
        position = offset + length;
      }
      yield* holeChunks(this.#size - position);
    }
    this.#state = 'done';
  }

  takeBuffered(): Uint8Array | undefined {
    if (this.#state !== 'unread') throw new LayerFormatError(`body of ${quote(this.#path)} was already read or skipped`, { path: this.#path });
    if (this.#fragments !== undefined && this.#size !== 0) return undefined; // holes are never buffered
    const whole = this.#source.readBuffered(this.#size);
    if (whole !== undefined) this.#state = 'done';
    return whole;
  }

  /** Ends access; returns how many stored bytes were consumed. Throws if a read was abandoned midway. */
  close(): number {
    const state = this.#state;
    this.#state = 'closed';
    if (state === 'reading') throw new LayerFormatError(`body of ${quote(this.#path)} was abandoned midway`, { path: this.#path });
    if (state !== 'done') return 0;
    return this.#fragments === undefined ? this.#size : this.#stored;
  }
}
