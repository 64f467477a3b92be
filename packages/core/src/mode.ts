/**
 * File-type bits of a host `st_mode`, and the layer node types they stand for.
 */
import type { NodeType } from './tree/layer-tree.js';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

const TYPES = new Map<number, NodeType>([
  [S_IFREG, 'file'],
  [S_IFDIR, 'directory'],
  [S_IFLNK, 'symlink'],
  [S_IFCHR, 'char'],
  [S_IFBLK, 'block'],
  [S_IFIFO, 'fifo'],
  [S_IFSOCK, 'socket'],
]);

const BITS: Record<NodeType, number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  char: S_IFCHR,
  block: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

/** The type of a host file from its `st_mode`, or undefined for a type no layer knows. */
export function nodeTypeOfMode(mode: number): NodeType | undefined {
  return TYPES.get(mode & S_IFMT);
}

/** The `st_mode` type bits of a node type. */
export function typeBitsOf(type: NodeType): number {
  return BITS[type];
}

/** The mknod type bits of a special file type. */
export function specialTypeBits(type: 'char' | 'block' | 'fifo' | 'socket'): number {
  return BITS[type];
}
