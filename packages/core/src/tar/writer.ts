/**
 * Deterministic layer writer. Entries become POSIX ustar headers, with a PAX record only where ustar cannot
 * say it (long names, big or negative numbers, sub-second times, xattrs); the addon encodes them
 * (`native/tar_header.c`), this file those it declines, byte for byte alike. Output comes in 256 KiB chunks:
 * headers and file content are written straight into the chunk, so a file is read once and copied never.
 */
import { closeSync, openSync, readSync, constants as fsConstants } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import type { BufferPool } from '../blob/buffer-pool.js';
import { fileShrank, type FileRange, type SplicedChunk } from '../blob/file-range.js';
import type { Entry, Timestamp } from '../entry.js';
import { mapEntryOwner, type IdMap } from '../idmap.js';
import { readFileInto, tarHeader } from '../native.js';
import { turn } from '../turns.js';
import { baseName, ROOT } from '../path.js';
import { encodeName, fsPath, hasEscapes } from '../name-bytes.js';
import { BLOCK_SIZE, encodeHeader, OCTAL_LIMIT_12, OCTAL_LIMIT_8, type HeaderFields } from './header.js';
import { encodePax, formatPaxTime, paxRecordLength } from './pax.js';

/** Where a file entry's content comes from. */
export type ContentSource =
  /** `size` bytes of a host file from `offset` (default 0): a file, or an entry of an uncompressed tarball. */
  | { readonly kind: 'path'; readonly path: string; readonly offset?: number }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'stream'; readonly stream: AsyncIterable<Uint8Array> };

/** One entry to write; `content` is required for files with a size above zero. */
export interface WriteItem {
  readonly entry: Entry;
  readonly content?: ContentSource;
}

/** Options of `writeTar`. */
export interface WriteTarOptions {
  /** Clamp every mtime to at most this many seconds since the epoch (`SOURCE_DATE_EPOCH`). */
  sourceDateEpoch?: number;
  /**
   * Take output chunks from this pool (`CHUNK_SIZE` buffers). Only for a consumer that is done with each chunk
   * once it asks for the next and gives chunks back to the pool (as `writeLayer` does with the same pool).
   */
  pool?: BufferPool;
  /** Owners as a user namespace sees them (a rootless caller's files as root's); an owner outside it is UNSUPPORTED. */
  idMap?: IdMap;
  signal?: AbortSignal;
}

/** Output chunk size; also the size of pooled buffers. Small enough to stay in a core's L2 cache between being filled and written. */
export const CHUNK_SIZE = 256 * 1024;
const TYPEFLAGS: Record<Entry['type'], string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};
const TYPEFLAG_CODES = Object.fromEntries(Object.entries(TYPEFLAGS).map(([type, flag]) => [type, flag.charCodeAt(0)])) as Record<Entry['type'], number>;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * `text` as UTF-8 in `scratch` (from its start), valid until the next call with the same scratch; a new
 * array when it does not fit, or when it carries bytes that are not UTF-8 (`encodeName`). ASCII, nearly
 * every name in a layer, is copied code by code: no allocation.
 */
function utf8(text: string, scratch: Uint8Array): Uint8Array {
  const n = text.length;
  if (n <= scratch.length) {
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      scratch[i] = c;
    }
    if (i === n) return scratch.subarray(0, n);
    if (hasEscapes(text)) return encodeName(text); // bytes that are not UTF-8 (see name-bytes.ts)
    const { read, written } = encoder.encodeInto(text, scratch);
    if (read === n) return scratch.subarray(0, written);
  }
  return encodeName(text);
}

const NAME_SCRATCH = new Uint8Array(4096);
const LINK_SCRATCH = new Uint8Array(4096);
const PAX_NAME_SCRATCH = new Uint8Array(4096);

/** Where a name goes in a ustar header: `name` (≤ 100 bytes), with `prefix` (≤ 155 bytes) when it has to be split. */
interface UstarName {
  name: Uint8Array;
  prefix: Uint8Array;
}

/** Packs `[prefix, name]` into ustar fields when possible; undefined when only PAX can hold the name. */
function splitUstarName(name: Uint8Array): UstarName | undefined {
  if (name.length <= 100) return { name, prefix: EMPTY };
  if (name.length > 255) return undefined;
  for (let i = name.length - 101; i < name.length; i++) {
    if (i < 0 || name[i] !== 0x2f) continue;
    if (i <= 155 && name.length - i - 1 <= 100 && i > 0) return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  return undefined;
}

function clampTime(time: Timestamp, epoch: number | undefined): Timestamp {
  if (epoch === undefined || time.sec < epoch) return time;
  return { sec: epoch, nsec: 0 };
}

/** Options of `TarWriter`. */
export interface TarWriterOptions extends WriteTarOptions {
  /**
   * Leave the content of `writeFileContent` files to the consumer: chunks come out by `takeBatches`, with
   * the files to splice in (the writing thread does the reading, off the encoding thread).
   */
  deferFiles?: boolean;
  /**
   * Encode every header in JavaScript, none through the addon's encoder (`tarHeader`): the reference that
   * encoder is tested against; the bytes are the same either way.
   */
  javascriptHeaders?: boolean;
}

/** A deferring writer hands its chunk on once it stands for this many bytes of files, so the consumer starts early. */
const DEFERRED_FLUSH_BYTES = 1024 * 1024;

/** Serialises entries to tar bytes. The caller owns ordering (parents first) and hardlink targets. */
export class TarWriter {
  /** A plain Uint8Array (over a pool buffer, when pooled): its subarray and fill are cheaper than Buffer's. */
  #chunk: Uint8Array;
  #used = 0;
  readonly #ready: Uint8Array[] = [];
  readonly #epoch: number | undefined;
  readonly #pool: BufferPool | undefined;
  readonly #defer: boolean;
  readonly #nativeHeaders: boolean;
  /** Deferred files of the current chunk, and of each ready chunk. */
  #inserts: FileRange[] = [];
  readonly #readyInserts: FileRange[][] = [];
  #deferredBytes = 0;

  constructor(options: TarWriterOptions = {}) {
    this.#epoch = options.sourceDateEpoch;
    if (options.pool && options.pool.size !== CHUNK_SIZE) throw new InvalidArgumentError(`tar writer pools hold ${CHUNK_SIZE}-byte buffers`);
    this.#pool = options.pool;
    this.#defer = options.deferFiles ?? false;
    this.#nativeHeaders = !(options.javascriptHeaders ?? false);
    this.#chunk = this.#fresh();
  }

  /** A new output chunk: pooled buffers are not zeroed, which is fine, as every byte of a chunk is written before it is used. */
  #fresh(): Uint8Array {
    if (!this.#pool) return new Uint8Array(CHUNK_SIZE);
    const buffer = this.#pool.take();
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  }

  /** Takes the chunks completed so far. */
  take(): Uint8Array[] {
    if (this.#defer) throw new InvalidArgumentError('a writer that defers files hands out batches: use takeBatches');
    return this.#ready.splice(0, this.#ready.length);
  }

  /** Takes the chunks completed so far, each with the files to splice into it. */
  takeBatches(): SplicedChunk[] {
    const chunks = this.#ready.splice(0, this.#ready.length);
    const inserts = this.#readyInserts.splice(0, this.#readyInserts.length);
    return chunks.map((bytes, i) => ({ bytes, files: inserts[i] ?? [] }));
  }

  #flush(): void {
    if (this.#used === 0 && this.#inserts.length === 0) return;
    this.#ready.push(this.#chunk.subarray(0, this.#used));
    if (this.#defer) {
      this.#readyInserts.push(this.#inserts);
      this.#inserts = [];
      this.#deferredBytes = 0;
    }
    this.#chunk = this.#fresh();
    this.#used = 0;
  }

  /** Room for `n` more bytes in the current chunk, flushing it first when needed. */
  #reserve(n: number): void {
    if (this.#used + n > CHUNK_SIZE) this.#flush();
  }

  #writeBytes(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#used === CHUNK_SIZE) this.#flush();
      const take = Math.min(bytes.length - offset, CHUNK_SIZE - this.#used);
      this.#chunk.set(bytes.subarray(offset, offset + take), this.#used);
      this.#used += take;
      offset += take;
    }
  }

  #pad(size: number): void {
    const padding = (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
    if (padding === 0) return;
    this.#reserve(padding);
    this.#chunk.fill(0, this.#used, this.#used + padding); // pooled chunks are not zeroed
    this.#used += padding;
  }

  /** Every header goes through here with fields of one shape (all present), which keeps the encoder monomorphic. */
  #header(fields: Required<HeaderFields>): void {
    this.#reserve(BLOCK_SIZE);
    const block = this.#chunk.subarray(this.#used, this.#used + BLOCK_SIZE);
    block.fill(0);
    encodeHeader(block, fields);
    this.#used += BLOCK_SIZE;
  }

  /** The PAX header and record of an entry whose time alone needs one (as `encodePax` writes it). */
  #paxTimeRecord(path: string, mtime: Timestamp): void {
    const time = formatPaxTime(mtime);
    const record = `${paxRecordLength(8 + time.length)} mtime=${time}\n`; // " mtime=" and "\n" are 8 bytes
    this.#paxHeader(path, record.length, mtime.sec);
    this.#reserve(BLOCK_SIZE); // a time's record is under 60 bytes
    this.#chunk.fill(0, this.#used, this.#used + BLOCK_SIZE);
    encoder.encodeInto(record, this.#chunk.subarray(this.#used, this.#used + record.length));
    this.#used += BLOCK_SIZE;
  }

  /** The header of the PAX records (`size` bytes) of the entry at `path`. */
  #paxHeader(path: string, size: number, sec: number): void {
    const paxName = utf8(`PaxHeaders/${baseName(path)}`, PAX_NAME_SCRATCH);
    this.#header({
      name: paxName.length <= 100 ? paxName : paxName.subarray(0, 100),
      prefix: EMPTY,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size,
      mtime: Math.max(0, Math.min(sec, OCTAL_LIMIT_12)),
      typeflag: 'x',
      linkname: EMPTY,
      uname: EMPTY,
      gname: EMPTY,
      devmajor: 0,
      devminor: 0,
    });
  }

  /** Writes the header (and PAX record, when needed) of `entry`. Content follows via the content methods. */
  writeHeader(entry: Entry): void {
    if (entry.path === ROOT) throw new InvalidArgumentError('the layer root has no entry of its own here');
    // Nearly every entry of a layer through the addon's encoder: the same bytes, without the per-entry
    // JavaScript a fresh process first runs interpreted (a first diff + write of the apt change 143 ms,
    // 111 with no header encoding at all).
    if (this.#nativeHeaders && entry.xattrs.size === 0 && !entry.uname && !entry.gname && this.#nativeHeader(entry)) return;
    const isDir = entry.type === 'directory';
    const nameText = isDir ? `${entry.path}/` : entry.path;
    const name = utf8(nameText, NAME_SCRATCH);
    const linkname = entry.linkname === undefined ? EMPTY : utf8(entry.linkname, LINK_SCRATCH);
    const uname = entry.uname ? encodeName(entry.uname) : EMPTY;
    const gname = entry.gname ? encodeName(entry.gname) : EMPTY;
    const mtime = clampTime(entry.mtime, this.#epoch);
    const size = entry.type === 'file' ? entry.size : 0;
    const devmajor = entry.devmajor ?? 0;
    const devminor = entry.devminor ?? 0;

    let records: Array<[string, Uint8Array | string]> | undefined;
    const split = splitUstarName(name);
    if (!split) (records ??= []).push(['path', hasEscapes(nameText) ? Uint8Array.from(name) : nameText]);
    if (linkname.length > 100) (records ??= []).push(['linkpath', linkname]);
    if (entry.uid > OCTAL_LIMIT_8) (records ??= []).push(['uid', String(entry.uid)]);
    if (entry.gid > OCTAL_LIMIT_8) (records ??= []).push(['gid', String(entry.gid)]);
    if (size > OCTAL_LIMIT_12) (records ??= []).push(['size', String(size)]);
    const paxTime = mtime.nsec !== 0 || mtime.sec < 0 || mtime.sec > OCTAL_LIMIT_12;
    // A sub-second time alone, nearly every PAX record of a real tree: its record written straight into the
    // chunk (the general path below gives the same bytes).
    if (paxTime && records === undefined && uname.length <= 32 && gname.length <= 32 && devmajor <= OCTAL_LIMIT_8 && devminor <= OCTAL_LIMIT_8 && entry.xattrs.size === 0) {
      this.#paxTimeRecord(entry.path, mtime);
    } else if (paxTime) (records ??= []).push(['mtime', formatPaxTime(mtime)]);
    if (uname.length > 32) (records ??= []).push(['uname', uname]);
    if (gname.length > 32) (records ??= []).push(['gname', gname]);
    if (devmajor > OCTAL_LIMIT_8) (records ??= []).push(['SCHILY.devmajor', String(devmajor)]);
    if (devminor > OCTAL_LIMIT_8) (records ??= []).push(['SCHILY.devminor', String(devminor)]);
    if (entry.xattrs.size > 0) for (const [key, value] of entry.xattrs) (records ??= []).push([`SCHILY.xattr.${key}`, value]);

    if (records !== undefined) {
      const pax = encodePax(records);
      this.#paxHeader(entry.path, pax.length, mtime.sec);
      this.#writeBytes(pax);
      this.#pad(pax.length);
    }
    this.#header({
      name: split ? split.name : name.subarray(0, 100),
      prefix: split ? split.prefix : EMPTY,
      mode: entry.mode & 0o7777,
      uid: Math.min(entry.uid, OCTAL_LIMIT_8),
      gid: Math.min(entry.gid, OCTAL_LIMIT_8),
      size,
      mtime: mtime.sec,
      typeflag: TYPEFLAGS[entry.type],
      linkname: linkname.length <= 100 ? linkname : linkname.subarray(0, 100),
      uname: uname.length <= 32 ? uname : uname.subarray(0, 32),
      gname: gname.length <= 32 ? gname : gname.subarray(0, 32),
      devmajor: Math.min(devmajor, OCTAL_LIMIT_8),
      devminor: Math.min(devminor, OCTAL_LIMIT_8),
    });
  }

  /** `entry`'s header by the addon's encoder; false when it declines the entry. */
  #nativeHeader(entry: Entry): boolean {
    const mtime = clampTime(entry.mtime, this.#epoch);
    const type = TYPEFLAG_CODES[entry.type];
    const size = entry.type === 'file' ? entry.size : 0;
    const devmajor = entry.devmajor ?? 0;
    const devminor = entry.devminor ?? 0;
    let written = tarHeader(this.#chunk, this.#used, entry.path, entry.linkname, type, entry.mode, entry.uid, entry.gid, size, mtime, devmajor, devminor);
    if (written < 0) {
      this.#reserve(-written); // it wrote nothing: the room it asked for, then once more
      written = tarHeader(this.#chunk, this.#used, entry.path, entry.linkname, type, entry.mode, entry.uid, entry.gid, size, mtime, devmajor, devminor);
    }
    if (written <= 0) return false;
    this.#used += written;
    return true;
  }

  /**
   * Copies `size` bytes of the file at `hostPath` into the output, reading straight into the chunk.
   * Throws FAILED_PRECONDITION if the file is shorter than `size` (it changed while being packed).
   */
  writeFileContent(hostPath: string, size: number, offset = 0): void {
    if (size === 0) return;
    if (this.#defer) {
      this.#inserts.push({ at: this.#used, path: hostPath, size, offset });
      this.#deferredBytes += size;
      if (this.#deferredBytes >= DEFERRED_FLUSH_BYTES) this.#flush();
      return;
    }
    if (this.#used + size <= CHUNK_SIZE) {
      // Fits the current chunk, as most files do: open, read and close in one native call.
      const got = readFileInto(hostPath, this.#chunk, this.#used, size, offset);
      if (got !== size) throw fileShrank(hostPath);
      this.#used += size;
    } else {
      // One descriptor for the whole file, so every chunk of it comes from the same inode.
      const fd = openSync(fsPath(hostPath), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      try {
        let left = size;
        while (left > 0) {
          if (this.#used === CHUNK_SIZE) this.#flush();
          const want = Math.min(left, CHUNK_SIZE - this.#used);
          const got = readSync(fd, this.#chunk, this.#used, want, offset + size - left);
          if (got === 0) throw fileShrank(hostPath);
          this.#used += got;
          left -= got;
        }
      } finally {
        closeSync(fd);
      }
    }
    this.#pad(size);
  }

  /** Copies in-memory content, then pads. */
  writeContent(bytes: Uint8Array): void {
    this.#writeBytes(bytes);
    this.#pad(bytes.length);
  }

  /** Appends part of a streamed file's content; call `endContent` with the total after the last part. */
  writeContentPart(bytes: Uint8Array): void {
    this.#writeBytes(bytes);
  }

  /** Pads a streamed file's content to the block boundary. */
  endContent(size: number): void {
    this.#pad(size);
  }

  /** Writes the two end-of-archive blocks and flushes everything. */
  finish(): void {
    this.#reserve(2 * BLOCK_SIZE);
    this.#chunk.fill(0, this.#used, this.#used + 2 * BLOCK_SIZE);
    this.#used += 2 * BLOCK_SIZE;
    this.#flush();
  }

  /** Bytes held in the current, not yet completed chunk. */
  get pending(): number {
    return this.#used;
  }
}

/**
 * Tar bytes for a sequence of entries, in the order given, ending with the end-of-archive blocks.
 * Throws INVALID_ARGUMENT when a file's content does not match its declared size, FAILED_PRECONDITION
 * when a source file shrinks while being read.
 */
export function writeTar(items: AsyncIterable<WriteItem> | Iterable<WriteItem>, options: WriteTarOptions = {}): AsyncGenerator<Uint8Array> {
  const writer = new TarWriter(options);
  return encodeItems(items, writer, () => writer.take(), options);
}

/**
 * `writeTar` for a consumer that reads host files itself: the content of `path` sources is not read here
 * but listed in each batch, to be spliced in (see `SplicedChunk`). Other content is in the bytes.
 */
export function writeTarBatches(items: AsyncIterable<WriteItem> | Iterable<WriteItem>, options: WriteTarOptions = {}): AsyncGenerator<SplicedChunk> {
  const writer = new TarWriter({ ...options, deferFiles: true });
  return encodeItems(items, writer, () => writer.takeBatches(), options);
}

/**
 * The encoding loop behind `writeTar` and `writeTarBatches`. A synchronous source (a host walk, a diff of
 * an upper) is pulled without an `await` per item: only finished chunks go through the async machinery.
 */
async function* encodeItems<T>(
  items: AsyncIterable<WriteItem> | Iterable<WriteItem>,
  writer: TarWriter,
  take: () => T[],
  { signal, idMap }: WriteTarOptions,
): AsyncGenerator<T> {
  const sync = Symbol.iterator in items ? items[Symbol.iterator]() : undefined;
  const async = sync ? undefined : (items as AsyncIterable<WriteItem>)[Symbol.asyncIterator]();
  let exhausted = false;
  try {
    for (;;) {
      const step = sync ? sync.next() : await async!.next();
      if (step.done) {
        exhausted = true;
        break;
      }
      signal?.throwIfAborted();
      const { content } = step.value;
      const entry = idMap ? mapEntryOwner(step.value.entry, idMap) : step.value.entry;
      writer.writeHeader(entry);
      if (entry.type === 'file' && entry.size > 0) {
        if (!content) throw new InvalidArgumentError(`no content for ${entry.path}`, { path: entry.path });
        if (content.kind === 'path') writer.writeFileContent(content.path, entry.size, content.offset);
        else if (content.kind === 'bytes') {
          if (content.bytes.length !== entry.size) throw new InvalidArgumentError(`content of ${entry.path} is not ${entry.size} bytes`, { path: entry.path });
          writer.writeContent(content.bytes);
        } else {
          let total = 0;
          for await (const part of content.stream) {
            total += part.length;
            if (total > entry.size) break;
            writer.writeContentPart(part);
            yield* take();
          }
          if (total !== entry.size) throw new InvalidArgumentError(`content of ${entry.path} is not ${entry.size} bytes`, { path: entry.path });
          writer.endContent(entry.size);
        }
      }
      const ready = take();
      if (ready.length > 0) yield* ready;
      const wait = turn();
      if (wait) await wait;
    }
  } finally {
    // On failure or an early stop, end the source as for...of would (closing its files, ending its walk).
    if (!exhausted) await (sync ? sync.return?.() : async!.return?.());
  }
  writer.finish();
  yield* take();
}
