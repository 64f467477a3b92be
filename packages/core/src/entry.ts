/**
 * The entry model shared by every reader and writer of layers, and the change set a diff produces.
 */

/** Every tar entry type a layer may hold. Sockets have no tar form and are skipped by writers. */
export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** A point in time with nanosecond precision; `sec` may be negative (before 1970) or beyond 2038. */
export interface Timestamp {
  readonly sec: number;
  /** 0 ≤ nsec < 1e9, also for negative `sec` (so -0.5 s is `{ sec: -1, nsec: 5e8 }`). */
  readonly nsec: number;
}

/** One entry of a layer: everything a tar header can say about a file. */
export interface Entry {
  /** Clean layer-relative path (see `cleanLayerPath`); `.` is the root. */
  readonly path: string;
  readonly type: EntryType;
  /** Permission bits including setuid, setgid and sticky (mask 0o7777); never the file-type bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname?: string;
  readonly gname?: string;
  /** Bytes of content; 0 for every type but `file`. */
  readonly size: number;
  readonly mtime: Timestamp;
  /** Symlink target as stored (may be absolute or relative), or the clean layer path a hardlink names. */
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extended attributes with their raw bytes; binary values are kept byte for byte. */
  readonly xattrs: ReadonlyMap<string, Uint8Array>;
}

/** What a layer does to one path, in the order a diff emits them (tar order). */
export type Change =
  | { readonly kind: 'add' | 'modify'; readonly entry: Entry }
  | { readonly kind: 'delete'; readonly path: string }
  | { readonly kind: 'opaque'; readonly path: string };
