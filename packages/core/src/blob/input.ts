/**
 * Where blob bytes come from: a file path, a Node stream, bytes in memory, or chunks. A file is read with
 * plain synchronous positional reads into pooled 1 MiB buffers: from the page cache that costs a memcpy,
 * far less than a stream's thread-pool round trip and buffering. A path that names a pipe is read the same
 * way, in order.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { LayerFormatError } from '../errors.js';
import type { BufferPool } from './buffer-pool.js';

/** Anything a blob can be read from: a file path, a Node stream, bytes in memory, or (async) chunks. */
export type ByteInput = string | Readable | Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Size of the chunks a file is read in (and of the pool's buffers). */
export const READ_CHUNK = 1024 * 1024;

/** A file's bytes in pooled chunks; `skip` seeks past bytes nobody needs. */
class FileChunks implements AsyncIterable<Uint8Array> {
  /** File offset of the next read: positional reads, so `skip` is a seek. */
  #position = 0;
  constructor(
    readonly fd: number,
    readonly pool: BufferPool,
  ) {}

  /** Moves past `n` bytes without reading them. */
  skip(n: number): void {
    this.#position += n;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        const buffer = this.pool.take();
        const n = readSync(this.fd, buffer, 0, READ_CHUNK, this.#position);
        if (n === 0) {
          // Past the end by a skip: bytes passed over were never there, so the stream was cut short (a
          // reader that reads them would find it so too).
          const size = fstatSync(this.fd).size;
          if (this.#position > size) throw new LayerFormatError(`truncated stream: ${this.#position - size} bytes missing at offset ${size}`);
          return;
        }
        this.#position += n;
        // A plain Uint8Array, not a Buffer: every view the parser takes of it (thousands a layer) is then a
        // native subarray, not a construction of Node's Buffer subclass, which costs while code is cold.
        yield new Uint8Array(buffer.buffer, buffer.byteOffset, n);
      }
    } finally {
      closeSync(this.fd);
    }
  }
}

/**
 * A pipe's (or any unseekable file's) bytes in pooled chunks, each filled by as many reads as it takes (a
 * pipe gives at most what its buffer holds, 64 KiB, a read): read on this thread, waiting for the writer as
 * `tar -f` does, at a tenth of a stream's page faults and a third of its time.
 */
class PipeChunks implements AsyncIterable<Uint8Array> {
  constructor(
    readonly fd: number,
    readonly pool: BufferPool,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      for (let ended = false; !ended; ) {
        const buffer = this.pool.take();
        let filled = 0;
        while (filled < READ_CHUNK) {
          const n = readSync(this.fd, buffer, filled, READ_CHUNK - filled, null);
          if (n === 0) {
            ended = true;
            break;
          }
          filled += n;
        }
        if (filled > 0) yield new Uint8Array(buffer.buffer, buffer.byteOffset, filled);
      }
    } finally {
      closeSync(this.fd);
    }
  }
}

async function* fromChunks(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

/** An input opened for reading. */
export interface OpenedInput {
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Known up front for files. */
  readonly size: number | undefined;
  /** Present for files: passes over `n` bytes without reading them (between pulls only). */
  readonly skip?: (n: number) => void;
  /** Present for files: a path that opens the same file (its descriptor's, under `/proc/self/fd`). */
  readonly sameFile?: string;
  /** Present for a path that names a pipe (or a device), read in order: its size is known once it ends. */
  readonly pipe?: true;
}

/** Opens a byte input as chunks, with its size when known up front (files). */
export function openInput(input: ByteInput, pool: BufferPool): OpenedInput {
  if (typeof input === 'string') {
    const fd = openSync(input, 'r');
    let stat;
    try {
      stat = fstatSync(fd);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    // A pipe (`<(…)`, /dev/stdin) or a device: no size, no seeking, nothing to reopen.
    if (!stat.isFile()) return { chunks: new PipeChunks(fd, pool), size: undefined, pipe: true };
    const chunks = new FileChunks(fd, pool);
    return { chunks, size: stat.size, skip: (n) => chunks.skip(n), sameFile: `/proc/self/fd/${fd}` };
  }
  if (input instanceof Uint8Array) return { chunks: fromChunks([input]), size: input.length };
  if (Symbol.asyncIterator in input) return { chunks: input, size: undefined };
  return { chunks: fromChunks(input), size: undefined };
}
