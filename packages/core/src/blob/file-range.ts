/**
 * Ranges of host files that a blob splices in: what lets a layer's content go from a file (or from a range
 * of an uncompressed layer) to the output on a native thread, never through this one.
 */
import { FailedPreconditionError } from '../errors.js';
import { quote } from '../quote.js';

/** `size` bytes of host file `path` from `offset`, to go into a stream after byte `at` of a chunk, then tar padding. */
export interface FileRange {
  readonly at: number;
  readonly path: string;
  readonly size: number;
  readonly offset: number;
}

/** Bytes with host file ranges to splice in, each after byte `at` of `bytes` (with its tar padding). */
export interface SplicedChunk {
  readonly bytes: Uint8Array;
  readonly files: readonly FileRange[];
}

/** The error for a host file that held fewer bytes than its entry says (it changed while being read). */
export function fileShrank(hostPath: string): FailedPreconditionError {
  return new FailedPreconditionError(`file shrank while being packed: ${quote(hostPath)}`, { path: hostPath });
}
