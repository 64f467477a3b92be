/**
 * What a host `lstat` says, in layer terms: the file type and Linux's device-number encoding. Shared by
 * the directory walk that packs layers and the host layer that reads them.
 */
import type { BigIntStats } from 'node:fs';
import type { NodeType } from './layer-tree.js';

const S_IFMT = 0o170000n;
const TYPES = new Map<bigint, NodeType>([
  [0o100000n, 'file'],
  [0o040000n, 'directory'],
  [0o120000n, 'symlink'],
  [0o020000n, 'char'],
  [0o060000n, 'block'],
  [0o010000n, 'fifo'],
  [0o140000n, 'socket'],
]);

/** The type of a host file, or undefined for a type no layer knows. */
export function nodeTypeOf(st: BigIntStats): NodeType | undefined {
  return TYPES.get(st.mode & S_IFMT);
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
export function deviceNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  return {
    devmajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}
