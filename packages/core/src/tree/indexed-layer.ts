/**
 * Layers held as an index of entries: an uncompressed layer tarball (content read in place, by offset) or a
 * tree in memory. Both read OCI whiteouts (`.wh.` names) and opaque markers from the entries.
 */
import { crypto } from '../builtins.js';
import { closeSync, constants as fsConstants, createReadStream, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync, type BigIntStats } from 'node:fs';
import type { Entry } from '../entry.js';
import { fsError, LayerFormatError, UnsupportedError } from '../errors.js';
import { baseName, cleanLayerPath, parentOf, ROOT } from '../path.js';
import { quote } from '../quote.js';
import { fsPath } from '../name-bytes.js';
import { detectCompression } from '../blob/compression.js';
import { readLayer } from '../layer/read-layer.js';
import { classifyWhiteout } from '../whiteout.js';
import { WHITEOUT_NODE, type ContentReader, type LayerNode, type LayerTree, type NodeStat, type NodeType } from './layer-tree.js';

interface Record {
  entry: Entry;
  /** Where the content starts: a tarball offset, or an index into in-memory contents. */
  offset: number;
}

const IMPLICIT_DIR = (path: string): Entry => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });

/** The shared index: records by path, listings by directory, opaque directories, hardlink counts. */
abstract class IndexedLayer implements LayerTree {
  readonly #records = new Map<string, Record>();
  readonly #children = new Map<string, Map<string, LayerNode>>([[ROOT, new Map()]]);
  readonly #opaque = new Set<string>();
  /** Names per shared content (by content offset), for the sets hardlinks make. */
  readonly #names = new Map<number, number>();
  /** Hardlinks seen before their targets (allowed, as in `applyLayer`): resolved by `finish`. */
  readonly #pendingLinks: Entry[] = [];

  /** Resolves hardlinks that came before their targets; LAYER_FORMAT when a target never came. */
  protected finish(): void {
    for (const entry of this.#pendingLinks.splice(0)) {
      if (!this.#records.has(entry.linkname!)) throw new LayerFormatError(`hardlink target not found: ${entry.path} -> ${entry.linkname}`, { path: entry.path });
      this.add(entry, 0);
    }
  }

  protected add(entry: Entry, offset: number): void {
    const kind = classifyWhiteout(entry.path);
    if (kind.kind === 'aufs-meta') return;
    if (kind.kind === 'opaque') {
      this.#ensureDir(kind.dir);
      this.#opaque.add(kind.dir);
      return;
    }
    const path = kind.kind === 'whiteout' ? kind.target : entry.path;
    if (path === ROOT) return;
    this.#ensureDir(parentOf(path));
    const siblings = this.#children.get(parentOf(path))!;
    if (kind.kind === 'whiteout') {
      if (!siblings.has(baseName(path))) siblings.set(baseName(path), WHITEOUT_NODE); // same-layer entries win
      return;
    }
    const target = entry.type === 'hardlink' ? this.#records.get(entry.linkname!) : undefined;
    if (entry.type === 'hardlink') {
      if (!target) {
        this.#pendingLinks.push(entry);
        return;
      }
      this.#names.set(target.offset, (this.#names.get(target.offset) ?? 1) + 1);
    }
    const resolved: Record = target ? { entry: { ...target.entry, path }, offset: target.offset } : { entry, offset };
    this.#records.set(path, resolved);
    siblings.set(baseName(path), { kind: 'entry', type: resolved.entry.type as NodeType });
    if (resolved.entry.type === 'directory' && !this.#children.has(path)) this.#children.set(path, new Map());
  }

  #ensureDir(dir: string): void {
    if (this.#children.has(dir)) return;
    this.#ensureDir(parentOf(dir));
    this.#children.get(parentOf(dir))!.set(baseName(dir), { kind: 'entry', type: 'directory' });
    this.#children.set(dir, new Map());
    if (!this.#records.has(dir)) this.#records.set(dir, { entry: IMPLICIT_DIR(dir), offset: 0 });
  }

  protected record(path: string): Record | undefined {
    return this.#records.get(path);
  }

  protected fileRecord(path: string, syscall: string): Record {
    const record = this.#records.get(path);
    if (!record) throw fsError('ENOENT', syscall, path);
    if (record.entry.type !== 'file') throw fsError(record.entry.type === 'directory' ? 'EISDIR' : 'EINVAL', syscall, path);
    return record;
  }

  /** Every record, for persisting the index. */
  protected records(): IterableIterator<Record> {
    return this.#records.values();
  }

  children(dir: string): ReadonlyMap<string, LayerNode> {
    return this.#children.get(dir) ?? new Map();
  }

  isOpaque(dir: string): boolean {
    return this.#opaque.has(dir);
  }

  stat(path: string): NodeStat | undefined {
    if (path === ROOT) {
      const { type: _type, ...root } = IMPLICIT_DIR(ROOT);
      return { ...root, type: 'directory', nlink: 1 };
    }
    const record = this.#records.get(path);
    if (!record) return undefined;
    const nlink = record.entry.type === 'file' && record.entry.size > 0 ? (this.#names.get(record.offset) ?? 1) : 1;
    const { type, ...rest } = record.entry;
    return { ...rest, type: type as NodeType, nlink, ...(nlink > 1 ? { identity: `offset:${record.offset}` } : {}) };
  }

  readlink(path: string): string {
    const record = this.#records.get(path);
    if (!record) throw fsError('ENOENT', 'readlink', path);
    if (record.entry.type !== 'symlink') throw fsError('EINVAL', 'readlink', path);
    return record.entry.linkname!;
  }

  abstract read(path: string): AsyncIterable<Uint8Array>;
  abstract readAll(path: string): Uint8Array;
  abstract openContent(path: string): ContentReader;
  abstract copyFileTo(path: string, hostPath: string): void;
}

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

/** Options of `TarLayer.open`. */
export interface TarLayerOptions {
  /**
   * Where to keep the index of entries and offsets between opens (a file path); reused while the tarball
   * is the same file with the same size and mtime. Default: none, the tarball's headers are read at each
   * open (content is seeked past, not read).
   */
  indexPath?: string;
}

/**
 * An uncompressed layer tarball read in place: entries by an index of offsets built at open (or loaded from
 * `indexPath`), content streamed straight from the tarball. Compressed layers have no random access:
 * UNSUPPORTED.
 */
export class TarLayer extends IndexedLayer {
  readonly tarPath: string;

  private constructor(tarPath: string) {
    super();
    this.tarPath = tarPath;
  }

  /** Opens the layer tarball at `tarPath`. Throws as `readLayer` does, UNSUPPORTED for a compressed one. */
  static async open(tarPath: string, options: TarLayerOptions = {}): Promise<TarLayer> {
    const st = statSync(tarPath, { bigint: true });
    const cached = options.indexPath === undefined ? undefined : loadIndex(options.indexPath, st);
    if (cached !== undefined) {
      const layer = new TarLayer(tarPath);
      for (const { entry, offset } of cached) layer.add(entry, offset);
      layer.finish();
      return layer;
    }
    const head = Buffer.alloc(6);
    const fd = openSync(tarPath, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    if (detectCompression(head) !== 'none') throw new UnsupportedError('an indexed layer must be an uncompressed tarball');
    const layer = new TarLayer(tarPath);
    const entries: Array<{ entry: Entry; offset: number }> = [];
    // Headers only: without hashing, the reader seeks past content instead of reading it.
    for await (const { entry, dataOffset } of readLayer(tarPath, { hash: false })) {
      if (dataOffset === undefined) {
        throw new UnsupportedError(`${tarPath}: the sparse file ${quote(entry.path)} cannot be read in place (apply the layer instead)`, { path: entry.path });
      }
      layer.add(entry, dataOffset);
      entries.push({ entry, offset: dataOffset });
    }
    layer.finish();
    if (options.indexPath !== undefined) saveIndex(options.indexPath, st, entries);
    return layer;
  }

  /** Where the content of the regular file at `path` lies: `size` bytes of the tarball from `offset`. */
  contentRange(path: string): { path: string; offset: number; size: number } {
    const { entry, offset } = this.fileRecord(path, 'open');
    return { path: this.tarPath, offset, size: entry.size };
  }

  read(path: string): AsyncIterable<Uint8Array> {
    const { entry, offset } = this.fileRecord(path, 'open');
    if (entry.size === 0) return (async function* () {})();
    return createReadStream(this.tarPath, { start: offset, end: offset + entry.size - 1, highWaterMark: 1024 * 1024 });
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
    const { entry, offset } = this.fileRecord(path, 'open');
    const fd = openSync(this.tarPath, 'r');
    return {
      read: (buffer, position) => {
        const want = Math.max(0, Math.min(buffer.length, entry.size - position));
        for (let done = 0; done < want; ) {
          const n = readSync(fd, buffer, done, want - done, offset + position + done);
          if (n === 0) throw new LayerFormatError(`tarball shorter than its index: ${this.tarPath}`);
          done += n;
        }
        return want;
      },
      close: () => closeSync(fd),
    };
  }

  copyFileTo(path: string, hostPath: string): void {
    const { entry, offset } = this.fileRecord(path, 'copyfile');
    const input = openSync(this.tarPath, 'r');
    const output = openSync(fsPath(hostPath), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      const buffer = Buffer.allocUnsafe(Math.min(entry.size, 1024 * 1024) || 1);
      for (let done = 0; done < entry.size; ) {
        const n = readSync(input, buffer, 0, Math.min(buffer.length, entry.size - done), offset + done);
        if (n === 0) throw new LayerFormatError(`tarball shorter than its index: ${this.tarPath}`);
        for (let w = 0; w < n; ) w += writeSync(output, buffer, w, n - w);
        done += n;
      }
    } finally {
      closeSync(input);
      closeSync(output);
    }
  }
}

/** One entry of an in-memory layer; files carry their content. */
export interface MemoryEntry {
  entry: Entry;
  content?: Uint8Array;
}

/** A layer held in memory (OCI whiteout names included): for tests, tools and small synthetic layers. */
export class MemoryLayer extends IndexedLayer {
  readonly #contents: Uint8Array[] = [];

  constructor(entries: Iterable<MemoryEntry>) {
    super();
    for (const { entry, content } of entries) {
      const offset = this.#contents.length;
      this.#contents.push(content ?? new Uint8Array(0));
      this.add(entry.type === 'file' ? { ...entry, size: content?.length ?? 0 } : entry, offset);
    }
    this.finish();
  }

  read(path: string): AsyncIterable<Uint8Array> {
    const content = this.#contents[this.fileRecord(path, 'open').offset]!;
    return (async function* () {
      yield content;
    })();
  }

  readAll(path: string): Uint8Array {
    return this.#contents[this.fileRecord(path, 'open').offset]!;
  }

  openContent(path: string): ContentReader {
    const content = this.readAll(path);
    return {
      read: (buffer, position) => {
        const piece = content.subarray(position, position + buffer.length);
        buffer.set(piece);
        return piece.length;
      },
      close: () => {},
    };
  }

  copyFileTo(path: string, hostPath: string): void {
    writeFileSync(fsPath(hostPath), this.#contents[this.fileRecord(path, 'copyfile').offset]!, { flag: 'wx', mode: 0o600 });
  }
}

