/**
 * Layers held as an index of entries: a layer tarball (`tar-layer.ts`, content read by offset) or a tree in
 * memory. Both read OCI whiteouts (`.wh.` names) and opaque markers from the entries.
 */
import { writeFileSync } from 'node:fs';
import type { Entry } from '../entry.js';
import { fsError, LayerFormatError } from '../errors.js';
import { baseName, parentOf, ROOT } from '../path.js';
import { fsPath } from '../name-bytes.js';
import type { Fragment } from '../tar/sparse.js';
import { classifyWhiteout } from '../whiteout.js';
import { WHITEOUT_NODE, type ContentReader, type LayerNode, type LayerTree, type NodeStat, type NodeType } from './layer-tree.js';

/** What the index holds for a path. */
export interface IndexRecord {
  entry: Entry;
  /** Where the content starts: a tarball offset, or an index into in-memory contents. */
  offset: number;
  /** A sparse file's map: its data fragments, stored one after another from `offset`. */
  fragments?: readonly Fragment[];
}

const IMPLICIT_DIR = (path: string): Entry => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: { sec: 0, nsec: 0 }, xattrs: new Map() });

/** The shared index: records by path, listings by directory, opaque directories, hardlink counts. */
export abstract class IndexedLayer implements LayerTree {
  readonly #records = new Map<string, IndexRecord>();
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

  protected add(entry: Entry, offset: number, fragments?: readonly Fragment[]): void {
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
    const resolved: IndexRecord = target ? { ...target, entry: { ...target.entry, path } } : fragments ? { entry, offset, fragments } : { entry, offset };
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

  protected record(path: string): IndexRecord | undefined {
    return this.#records.get(path);
  }

  protected fileRecord(path: string, syscall: string): IndexRecord {
    const record = this.#records.get(path);
    if (!record) throw fsError('ENOENT', syscall, path);
    if (record.entry.type !== 'file') throw fsError(record.entry.type === 'directory' ? 'EISDIR' : 'EINVAL', syscall, path);
    return record;
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

