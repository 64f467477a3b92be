/**
 * The read interface every layer source implements: what one layer says about a path (an entry, a
 * whiteout, or nothing), its directory listings, metadata and content. Lookups are synchronous and return
 * undefined for absent paths: they sit on the hot path of every merged-view operation.
 */
import type { Entry } from '../entry.js';

/** The kinds of filesystem object a layer can hold (sockets appear only in host directories). */
export type NodeType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** What one layer holds at one path. */
export type LayerNode = { readonly kind: 'whiteout' } | { readonly kind: 'entry'; readonly type: NodeType };

export const WHITEOUT_NODE: LayerNode = Object.freeze({ kind: 'whiteout' });

/** Metadata of one entry of a layer, as `stat` gives it (hardlinks are resolved to their target). */
export interface NodeStat extends Omit<Entry, 'type'> {
  readonly type: NodeType;
  /** Names this content has in the layer (1 unless hardlinked). */
  readonly nlink: number;
  /** For files with several names: the same string for every name of the set (within one layer). */
  readonly identity?: string;
}

/** Synchronous positional reads of one file's content, without holding it whole; closed by whoever opened it. */
export interface ContentReader {
  /** Reads into `buffer` from byte `position` of the content: how many bytes, fewer only at its end (0 there). */
  read(buffer: Uint8Array, position: number): number;
  close(): void;
}

/** A read-only layer: a host directory, an indexed tarball, or a tree in memory. Paths are clean layer paths. */
export interface LayerTree {
  /** Children of directory `dir`: entries and whiteouts by name (opaque markers are not children). Empty if `dir` is not a directory here. */
  children(dir: string): ReadonlyMap<string, LayerNode>;
  /** True when directory `dir` hides everything below it in lower layers. */
  isOpaque(dir: string): boolean;
  /** Full metadata of the entry at `path`; undefined when this layer has no entry there. */
  stat(path: string): NodeStat | undefined;
  /** Target of the symlink at `path`. Throws EINVAL when it is not a symlink. */
  readlink(path: string): string;
  /** Content of the regular file at `path`, streamed. */
  read(path: string): AsyncIterable<Uint8Array>;
  /** Content of the regular file at `path`, whole (for `readFile`, which returns it whole anyway). */
  readAll(path: string): Uint8Array;
  /** Content of the regular file at `path`, for reading piece by piece (comparisons, read-only handles). */
  openContent(path: string): ContentReader;
  /** Copies the regular file at `path` to a new host file (reflink where the filesystem can). */
  copyFileTo(path: string, hostPath: string): void;
}
