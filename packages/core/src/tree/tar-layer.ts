/**
 * TarLayer: a layer tarball as a tree, its entries indexed by path and their content read by offset. A plain
 * tarball is read in place, sparse files included (their holes read as zeros); a compressed one is first
 * decompressed into an unnamed temporary file (`layer-spool.ts`), which `close` lets go of.
 */
import { crypto } from '../builtins.js';
import { closeSync, constants as fsConstants, createReadStream, ftruncateSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, type BigIntStats } from 'node:fs';
import type { Entry } from '../entry.js';
import { LayerFormatError } from '../errors.js';
import { cleanLayerPath, ROOT } from '../path.js';
import { fsPath } from '../name-bytes.js';
import { detectFileCompression } from '../blob/compression.js';
import { readLayer, type ReadLimits } from '../layer/read-layer.js';
import { DEFAULT_LIMITS } from '../tar/reader.js';
import { holeChunks } from '../tar/sparse.js';
import { IndexedLayer, type IndexRecord } from './indexed-layer.js';
import type { ContentReader } from './layer-tree.js';
import { spoolLayer, type LayerSpool } from './layer-spool.js';
import { writeAll } from '../host/write-all.js';

const INDEX_VERSION = 2;

/** A persisted index: the entries of one tarball, valid while the tarball is the same file, unchanged. */
interface IndexFile {
  version: number;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  records: Array<{ entry: Omit<Entry, 'xattrs'> & { xattrs: Array<[string, string]> }; offset: number }>;
}

const ENTRY_TYPES = new Set<string>(['file', 'directory', 'symlink', 'hardlink', 'char', 'block', 'fifo']);
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * The entries of a persisted index, each checked as the reader would have checked it (clean paths, known
 * types, content inside the tarball); undefined when the index is absent, stale or malformed in any way.
 */
function loadIndex(indexPath: string, st: BigIntStats): Array<{ entry: Entry; offset: number }> | undefined {
  let index: IndexFile;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8')) as IndexFile;
  } catch {
    return undefined; // absent or not JSON: build one
  }
  const size = Number(st.size);
  if (
    index?.version !== INDEX_VERSION ||
    index.dev !== Number(st.dev) ||
    index.ino !== Number(st.ino) ||
    index.size !== size ||
    index.mtimeNs !== String(st.mtimeNs) ||
    !Array.isArray(index.records)
  ) {
    return undefined;
  }
  const entries: Array<{ entry: Entry; offset: number }> = [];
  try {
    for (const { entry, offset } of index.records) {
      const { xattrs, ...rest } = entry;
      const ok =
        typeof rest.path === 'string' &&
        (rest.path === ROOT || cleanLayerPath(rest.path) === rest.path) &&
        ENTRY_TYPES.has(rest.type) &&
        isCount(rest.mode) && isCount(rest.uid) && isCount(rest.gid) && isCount(rest.size) && isCount(offset) &&
        offset + rest.size <= size &&
        Number.isSafeInteger(rest.mtime?.sec) && isCount(rest.mtime?.nsec) &&
        (rest.type !== 'hardlink' || (typeof rest.linkname === 'string' && cleanLayerPath(rest.linkname) === rest.linkname)) &&
        (rest.type !== 'symlink' || typeof rest.linkname === 'string') &&
        Array.isArray(xattrs) && xattrs.every((x) => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'string');
      if (!ok) return undefined;
      entries.push({ entry: { ...rest, xattrs: new Map(xattrs.map(([k, v]) => [k, Buffer.from(v, 'base64')])) }, offset });
    }
  } catch {
    return undefined; // an unsafe path in a cached index: ignore the cache, the tarball decides
  }
  return entries;
}

/** Writes an index under a name unique to this call, then renames it into place: concurrent opens never see half of one. */
function saveIndex(indexPath: string, st: BigIntStats, entries: Array<{ entry: Entry; offset: number }>): void {
  const index: IndexFile = {
    version: INDEX_VERSION,
    dev: Number(st.dev),
    ino: Number(st.ino),
    size: Number(st.size),
    mtimeNs: String(st.mtimeNs),
    records: entries.map(({ entry, offset }) => ({ entry: { ...entry, xattrs: [...entry.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('base64')]) }, offset })),
  };
  const temporary = `${indexPath}.tmp-${process.pid}-${crypto().randomBytes(6).toString('hex')}`;
  try {
    writeFileSync(temporary, JSON.stringify(index), { flag: 'wx', mode: 0o644 });
    renameSync(temporary, indexPath);
  } catch {
    rmSync(temporary, { force: true }); // a read-only location: the index stays in memory
  }
}

/** Options of `TarLayer.open`: the limits bound what the tarball may hold, as in `readLayer`. */
export interface TarLayerOptions extends ReadLimits {
  /**
   * Where to keep the index of entries and offsets between opens (a file path); reused while the tarball
   * is the same file with the same size and mtime. Default: none, the tarball's headers are read at each
   * open (content is seeked past, not read). Kept for plain tarballs without sparse files only.
   */
  indexPath?: string;
  /**
   * Where a compressed tarball is decompressed: an unnamed file, gone when the layer is closed or collected,
   * of at most what the limits let a tarball hold (LIMIT_EXCEEDED past it: a compression bomb stops there).
   * Default: the OS's temporary directory.
   */
  spoolDir?: string;
}

/**
 * Where a file's content lies: each stretch of it that holds data (`offset`, `length` in the file) and where
 * that is in the tarball (`stored`); one stretch for a file that is not sparse, the fragments for one that is.
 */
function* extents(record: IndexRecord): Generator<{ offset: number; length: number; stored: number }> {
  if (record.fragments === undefined) {
    yield { offset: 0, length: record.entry.size, stored: record.offset };
    return;
  }
  let stored = record.offset;
  for (const { offset, length } of record.fragments) {
    yield { offset, length, stored };
    stored += length;
  }
}

/** Spools of layers collected without `close`. */
const closeWhenCollected = new FinalizationRegistry<LayerSpool>((spool) => spool.close());

/** How much of a file's content one read takes. */
const READ_PIECE = 1024 * 1024;

/**
 * A layer tarball (plain, gzip or zstd) as a read-only tree: OCI whiteouts and opaque markers read from its
 * entries, content read by offset from the tarball or, for a compressed one, from its decompressed copy.
 * Open with `TarLayer.open`; `close` when done with a compressed one (the collector does it otherwise).
 */
export class TarLayer extends IndexedLayer {
  /** The tarball as opened, for messages. */
  readonly tarPath: string;
  /** Where content is read: the tarball, or its decompressed copy. */
  readonly #readPath: string;
  readonly #spool: LayerSpool | undefined;

  private constructor(tarPath: string, spool?: LayerSpool) {
    super();
    this.tarPath = tarPath;
    this.#readPath = spool?.path ?? tarPath;
    this.#spool = spool;
    if (spool) closeWhenCollected.register(this, spool, this);
  }

  /**
   * Opens the layer tarball at `tarPath` (plain, gzip or zstd; a file, or a pipe such as `<(…)`, which is
   * copied first as a compressed one is). Throws as `readLayer` does, and UNSUPPORTED for a compressed or
   * piped one where there is no /proc to read its copy through.
   */
  static async open(tarPath: string, options: TarLayerOptions = {}): Promise<TarLayer> {
    const { indexPath, spoolDir, ...limits } = options;
    const st = statSync(tarPath, { bigint: true });
    // A pipe has no offsets to read by, nor an identity an index could be kept for.
    const seekable = st.isFile();
    const cached = indexPath === undefined || !seekable ? undefined : loadIndex(indexPath, st);
    if (cached !== undefined) {
      const layer = new TarLayer(tarPath);
      for (const { entry, offset } of cached) layer.add(entry, offset);
      layer.finish();
      return layer;
    }
    if (seekable && detectFileCompression(tarPath) === 'none') {
      const { layer, records, sparse } = await TarLayer.#index(tarPath, limits);
      if (indexPath !== undefined && !sparse) saveIndex(indexPath, st, records);
      return layer;
    }
    // The most the limits let a tarball hold bounds its copy: the content, and for each entry its header,
    // padding, and up to three records (PAX, long name, long link) with their headers.
    const bound = { ...DEFAULT_LIMITS, ...limits };
    const spool = await spoolLayer(tarPath, bound.maxTotalBytes + bound.maxEntries * (5 * 512 + 3 * bound.maxHeaderBytes), spoolDir);
    try {
      return (await TarLayer.#index(tarPath, limits, spool)).layer;
    } catch (error) {
      spool.close();
      throw error;
    }
  }

  /** The layer indexed from its plain tarball (the spool's, when given). */
  static async #index(tarPath: string, limits: ReadLimits, spool?: LayerSpool): Promise<{ layer: TarLayer; records: IndexRecord[]; sparse: boolean }> {
    const layer = new TarLayer(tarPath, spool);
    const records: IndexRecord[] = [];
    let sparse = false;
    // Headers only: without hashing, the reader seeks past content instead of reading it.
    for await (const { entry, dataOffset, sparse: map } of readLayer(spool?.path ?? tarPath, { ...limits, hash: false })) {
      if (map !== undefined) {
        layer.add(entry, map.dataOffset, map.fragments);
        sparse = true;
      } else {
        layer.add(entry, dataOffset!);
        records.push({ entry, offset: dataOffset! });
      }
    }
    layer.finish();
    return { layer, records, sparse };
  }

  /** Lets go of a compressed tarball's decompressed copy (nothing for a plain one); its content is unreadable after. */
  close(): void {
    if (this.#spool === undefined) return;
    closeWhenCollected.unregister(this);
    this.#spool.close();
  }

  /**
   * Where the content of the regular file at `path` lies: `size` bytes of the tarball from `offset`.
   * Undefined where it is not one range of a file a host path names (a sparse file; a compressed tarball's
   * decompressed copy): `read` it instead.
   */
  contentRange(path: string): { path: string; offset: number; size: number } | undefined {
    const { entry, offset, fragments } = this.fileRecord(path, 'open');
    return this.#spool === undefined && fragments === undefined ? { path: this.tarPath, offset, size: entry.size } : undefined;
  }

  read(path: string): AsyncIterable<Uint8Array> {
    const record = this.fileRecord(path, 'open');
    const { entry, offset } = record;
    if (entry.size === 0) return (async function* () {})();
    // A stream opens its file later: the decompressed copy is read by a generator holding this layer, so that
    // the copy cannot be let go of by a collection in between.
    if (record.fragments === undefined && this.#spool === undefined) return createReadStream(this.#readPath, { start: offset, end: offset + entry.size - 1, highWaterMark: READ_PIECE });
    return this.#readPieces(record);
  }

  /** The content of `record` read in pieces, a sparse file's holes as the shared zeros (`isHole`). */
  async *#readPieces(record: IndexRecord): AsyncGenerator<Uint8Array> {
    const fd = openSync(this.#readPath, 'r');
    try {
      let at = 0;
      for (const { offset, length, stored } of extents(record)) {
        yield* holeChunks(offset - at);
        for (let done = 0; done < length; ) {
          const piece = Buffer.allocUnsafe(Math.min(READ_PIECE, length - done));
          this.#readFully(fd, piece, stored + done);
          done += piece.length;
          yield piece;
        }
        at = offset + length;
      }
      yield* holeChunks(record.entry.size - at);
    } finally {
      closeSync(fd);
    }
  }

  /** Fills `buffer` from the tarball at `position`; LAYER_FORMAT when the tarball ends first. */
  #readFully(fd: number, buffer: Uint8Array, position: number): void {
    for (let done = 0; done < buffer.length; ) {
      const n = readSync(fd, buffer, done, buffer.length - done, position + done);
      if (n === 0) throw new LayerFormatError(`tarball shorter than its index: ${this.tarPath}`);
      done += n;
    }
  }

  /** Up to `buffer.length` bytes of the content of `record` from `position` (holes as zeros): how many there were. */
  #readAt(fd: number, record: IndexRecord, buffer: Uint8Array, position: number): number {
    const want = Math.max(0, Math.min(buffer.length, record.entry.size - position));
    if (record.fragments !== undefined) buffer.fill(0, 0, want); // the holes
    for (const { offset, length, stored } of extents(record)) {
      if (offset >= position + want) break;
      const from = Math.max(offset, position);
      const to = Math.min(offset + length, position + want);
      if (from < to) this.#readFully(fd, buffer.subarray(from - position, to - position), stored + (from - offset));
    }
    return want;
  }

  readAll(path: string): Uint8Array {
    const { size } = this.fileRecord(path, 'open').entry;
    const out = Buffer.allocUnsafe(size);
    const reader = this.openContent(path);
    try {
      reader.read(out, 0);
    } finally {
      reader.close();
    }
    return out;
  }

  openContent(path: string): ContentReader {
    const record = this.fileRecord(path, 'open');
    const fd = openSync(this.#readPath, 'r');
    return {
      read: (buffer, position) => this.#readAt(fd, record, buffer, position),
      close: () => closeSync(fd),
    };
  }

  /** Copies the file's content to a new host file; a sparse file's holes stay holes there. */
  copyFileTo(path: string, hostPath: string): void {
    const record = this.fileRecord(path, 'copyfile');
    const input = openSync(this.#readPath, 'r');
    const output = openSync(fsPath(hostPath), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      const buffer = Buffer.allocUnsafe(Math.min(record.entry.size, READ_PIECE) || 1);
      const copy = (from: number, to: number, length: number) => {
        for (let done = 0; done < length; ) {
          const piece = buffer.subarray(0, Math.min(buffer.length, length - done));
          this.#readFully(input, piece, from + done);
          writeAll(output, piece, to + done);
          done += piece.length;
        }
      };
      for (const { offset, length, stored } of extents(record)) copy(stored, offset, length);
      if (record.fragments !== undefined) ftruncateSync(output, record.entry.size); // the holes after the last data
    } finally {
      closeSync(input);
      closeSync(output);
    }
  }
}
