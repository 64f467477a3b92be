/**
 * Streaming layer reader: any real layer tarball (ustar, POSIX/PAX, GNU long names; plain, gzip or zstd)
 * as an async sequence of entries, each with a body to stream. Strict by default: every malformation and
 * every unsafe name is a typed error, never a warning.
 */
import { LayerFormatError, LimitExceededError, UnsupportedError } from '../errors.js';
import type { Entry, EntryType, Timestamp } from '../entry.js';
import { cleanLayerPath } from '../path.js';
import { asciiText, decimal } from './ascii.js';
import { ByteSource } from './byte-source.js';
import { decodeInput, type ByteInput, type DecodeOptions, type LayerDigests } from './digest.js';
import { BLOCK_SIZE, decodeHeader, isZeroBlock, type RawHeader } from './header.js';
import { decodePax, parsePaxTime } from './pax.js';

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

/** Options of `readLayer`. */
export interface ReadLayerOptions extends ReadLimits, DecodeOptions {
  signal?: AbortSignal;
}

/** One entry and its content. */
export interface LayerEntry {
  readonly entry: Entry;
  /** Archive offset of the entry's content (for indexing uncompressed layers). */
  readonly dataOffset: number;
  /**
   * The content (`entry.size` bytes; empty for non-files). Read it before asking for the next entry, or
   * not at all: the reader skips what was not read. Reading it after moving on throws. Chunks are views
   * into the reader's buffers, which it reuses: a chunk is valid until the next one is requested, so copy
   * what you keep.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** A layer opened for reading: its entries, then its digests once they have all been read. */
export interface LayerReader extends AsyncIterable<LayerEntry> {
  /** Digests of the whole blob, trailing bytes included; available after iteration finished. */
  digests(): Promise<LayerDigests>;
}

const DEFAULTS: Required<ReadLimits> = {
  maxEntries: 10_000_000,
  maxTotalBytes: 2 ** 40,
  maxPathBytes: 4096,
  maxHeaderBytes: 1024 * 1024,
  maxXattrBytes: 64 * 1024,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(bytes: Uint8Array, what: string): string {
  const ascii = asciiText(bytes); // nearly every name: no decoder
  if (ascii !== undefined) return ascii;
  try {
    return utf8.decode(bytes);
  } catch {
    throw new LayerFormatError(`${what} is not valid UTF-8`);
  }
}

const TYPES: Record<string, EntryType> = {
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

function paxNumber(records: Map<string, Uint8Array>, key: string): number | undefined {
  const raw = records.get(key);
  if (raw === undefined) return undefined;
  const value = decimal(raw);
  if (value < 0) throw new LayerFormatError(`PAX ${key} is not a number: ${JSON.stringify(Buffer.from(raw).toString('latin1'))}`);
  return value;
}

function paxString(records: Map<string, Uint8Array>, key: string): string | undefined {
  const raw = records.get(key);
  return raw === undefined ? undefined : text(raw, `PAX ${key}`);
}

function xattrsOf(records: Map<string, Uint8Array>, limits: Required<ReadLimits>): Map<string, Uint8Array> {
  const xattrs = new Map<string, Uint8Array>();
  if (records.size === 0) return xattrs;
  for (const [key, value] of records) {
    let name: string | undefined;
    let bytes = value;
    if (key.startsWith('SCHILY.xattr.')) name = key.slice('SCHILY.xattr.'.length);
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      bytes = Buffer.from(Buffer.from(value).toString('latin1'), 'base64');
    }
    if (name === undefined) continue;
    if (name === '' || name.length > 255) throw new LayerFormatError(`xattr name is invalid: ${JSON.stringify(name)}`);
    if (bytes.length > limits.maxXattrBytes) {
      throw new LimitExceededError(`xattr ${name} is ${bytes.length} bytes, over the ${limits.maxXattrBytes}-byte limit`);
    }
    // Copy: the record views the reader's buffer, which is reused.
    xattrs.set(name, Uint8Array.from(bytes));
  }
  return xattrs.size < 2 ? xattrs : new Map([...xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isSparse(header: RawHeader, records: Map<string, Uint8Array>): boolean {
  if (header.typeflag === 'S') return true;
  for (const key of records.keys()) if (key.startsWith('GNU.sparse.')) return true;
  return false;
}

/**
 * Opens a layer for reading. Entries come in archive order with clean paths (see `cleanLayerPath`).
 *
 * Throws, while iterating: LAYER_FORMAT (checksum, truncation, malformed PAX, invalid UTF-8 names, a
 * missing end-of-archive), UNSAFE_PATH (`..`, absolute names or hardlink targets), LIMIT_EXCEEDED (see
 * `ReadLimits`), UNSUPPORTED (sparse files, multi-volume archives, unknown entry types, xz/bzip2).
 */
export function readLayer(input: ByteInput, options: ReadLayerOptions = {}): LayerReader {
  const limits = { ...DEFAULTS, ...options };
  const state: ReadState = { finished: false };
  return {
    async digests() {
      if (!state.finished || !state.digests) throw new LayerFormatError('layer digests are known only after reading every entry');
      return state.digests();
    },
    [Symbol.asyncIterator]: () => entries(input, options, limits, state),
  };
}

/** What iterating a layer leaves its reader: the digests, valid once every entry was read. */
interface ReadState {
  digests?: () => Promise<LayerDigests>;
  finished: boolean;
}

/** Names of the extended-header records, by type flag. */
const RECORDS: Record<string, string> = { x: 'PAX', g: 'PAX global', L: 'GNU long name', K: 'GNU long link' };

/** The parse loop as the iterator itself, not wrapped in a generator that delegates to it: one `yield` per entry, not two. */
async function* entries(input: ByteInput, options: ReadLayerOptions, limits: Required<ReadLimits>, state: ReadState): AsyncGenerator<LayerEntry> {
  const decoded = await decodeInput(input, options);
  state.digests = decoded.digests;
  const source = new ByteSource(decoded.stream, decoded.skip);
  const signal = options.signal;
  try {
    let globals = new Map<string, Uint8Array>();
    let pax: Map<string, Uint8Array> | undefined;
    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    let count = 0;
    let totalBytes = 0;
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
      const block = source.readBuffered(BLOCK_SIZE) ?? (await source.read(BLOCK_SIZE));
      if (block === undefined) {
        throw new LayerFormatError(sawHeader ? 'truncated stream: no end-of-archive marker' : 'empty input: not a tar archive');
      }
      if (isZeroBlock(block)) {
        if (pax || longName || longLink) throw new LayerFormatError('archive ends after an extended header');
        const second = await source.read(BLOCK_SIZE);
        if (second !== undefined && !isZeroBlock(second)) throw new LayerFormatError('data after a single end-of-archive block');
        await source.drain(); // trailing bytes are part of the blob and of its diffID
        state.finished = true;
        return;
      }
      let header: RawHeader;
      try {
        header = decodeHeader(block);
      } catch (error) {
        if (!sawHeader) throw new LayerFormatError('not a tar archive', { cause: error });
        throw error;
      }
      sawHeader = true;
      const recordName = RECORDS[header.typeflag];
      if (recordName !== undefined) {
        if (header.typeflag === 'x' && pax) throw new LayerFormatError('two PAX headers for one entry');
        let record = readRecord(header, recordName);
        if (!(record instanceof Uint8Array)) record = await record;
        if (header.typeflag === 'x') pax = decodePax(record);
        else if (header.typeflag === 'g') globals = new Map([...globals, ...decodePax(record)]);
        else if (header.typeflag === 'L') longName = trimNul(record);
        else longLink = trimNul(record);
        continue;
      }
      switch (header.typeflag) {
        case 'V': {
          const skipping = source.skip(padded(header.size));
          if (skipping) await skipping;
          continue;
        }
        case 'M':
        case 'N':
          throw new UnsupportedError(`tar entry type '${header.typeflag}' (multi-volume or old GNU long names) is not supported`);
      }
      const records = pax === undefined ? globals : globals.size === 0 ? pax : new Map([...globals, ...pax]);
      pax = undefined;
      if (isSparse(header, records)) throw new UnsupportedError('sparse files are not supported in layers');
      let type = TYPES[header.typeflag];
      if (type === undefined) throw new UnsupportedError(`unknown tar entry type '${header.typeflag}'`);

      const nameBytes = records.get('path') ?? longName ?? joinPrefix(header.prefix, header.name);
      const linkBytes = records.get('linkpath') ?? longLink ?? header.linkname;
      longName = longLink = undefined;
      if (nameBytes.length > limits.maxPathBytes || linkBytes.length > limits.maxPathBytes) {
        throw new LimitExceededError(`entry name over the ${limits.maxPathBytes}-byte limit`);
      }
      const rawName = text(nameBytes, 'entry name');
      if (type === 'file' && rawName.endsWith('/')) type = 'directory'; // pre-POSIX directories
      const path = cleanLayerPath(rawName);
      const declaredSize = paxNumber(records, 'size') ?? header.size;
      if (declaredSize < 0) throw new LayerFormatError(`negative size for ${rawName}`);
      if (++count > limits.maxEntries) throw new LimitExceededError(`more than ${limits.maxEntries} entries`, { path });
      totalBytes += declaredSize;
      if (totalBytes > limits.maxTotalBytes) throw new LimitExceededError(`content over the ${limits.maxTotalBytes}-byte limit`, { path });

      const linkText = linkBytes.length > 0 ? text(linkBytes, 'link name') : undefined;
      let linkname: string | undefined;
      if (type === 'hardlink') {
        if (linkText === undefined) throw new LayerFormatError(`hardlink without a target: ${rawName}`, { path });
        linkname = cleanLayerPath(linkText);
      } else if (type === 'symlink') {
        if (linkText === undefined) throw new LayerFormatError(`symlink without a target: ${rawName}`, { path });
        linkname = linkText;
      }
      const mtimeRecord = paxString(records, 'mtime');
      const mtime: Timestamp = mtimeRecord !== undefined ? parsePaxTime(mtimeRecord) : { sec: header.mtime, nsec: 0 };
      const uname = paxString(records, 'uname') ?? text(header.uname, 'uname');
      const gname = paxString(records, 'gname') ?? text(header.gname, 'gname');
      // Built field by field, not with spreads: this runs once per entry, and spreads cost an object copy each.
      const entry: { -readonly [K in keyof Entry]: Entry[K] } = {
        path,
        type,
        mode: header.mode & 0o7777,
        uid: paxNumber(records, 'uid') ?? header.uid,
        gid: paxNumber(records, 'gid') ?? header.gid,
        size: type === 'file' ? declaredSize : 0,
        mtime,
        xattrs: xattrsOf(records, limits),
      };
      if (uname) entry.uname = uname;
      if (gname) entry.gname = gname;
      if (linkname !== undefined) entry.linkname = linkname;
      if (type === 'char' || type === 'block') {
        entry.devmajor = paxNumber(records, 'SCHILY.devmajor') ?? header.devmajor;
        entry.devminor = paxNumber(records, 'SCHILY.devminor') ?? header.devminor;
      }

      const dataOffset = source.position;
      // Boxed so the body's generator and this loop share it (and TypeScript does not narrow it away).
      const body = new EntryBody(source, type === 'file' ? declaredSize : 0, path);
      yield { entry, dataOffset, body };
      const consumed = body.close();
      const skipping = source.skip(padded(declaredSize) - consumed);
      if (skipping) await skipping; // only when the source cannot seek: most skips are done here and now
    }
  } finally {
    if (!state.finished) await decoded.abort(); // failed or abandoned: its hashing threads are not needed
  }
}

/** An entry's content: readable once, while the reader is still at that entry. */
class EntryBody implements AsyncIterable<Uint8Array> {
  #state: 'unread' | 'reading' | 'done' | 'closed' = 'unread';
  readonly #source: ByteSource;
  readonly #size: number;
  readonly #path: string;

  constructor(source: ByteSource, size: number, path: string) {
    this.#source = source;
    this.#size = size;
    this.#path = path;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#state !== 'unread') throw new LayerFormatError(`body of ${this.#path} was already read or skipped`, { path: this.#path });
    this.#state = 'reading';
    yield* this.#source.chunks(this.#size);
    this.#state = 'done';
  }

  /** Ends access; returns how many content bytes were consumed. Throws if a read was abandoned midway. */
  close(): number {
    const state = this.#state;
    this.#state = 'closed';
    if (state === 'reading') throw new LayerFormatError(`body of ${this.#path} was abandoned midway`, { path: this.#path });
    return state === 'done' ? this.#size : 0;
  }
}

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
