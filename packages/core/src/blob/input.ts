/**
 * Where blob bytes come from: a file path, a Node stream, bytes in memory, or chunks. A file is read with
 * plain synchronous positional reads into pooled 1 MiB buffers: from the page cache that costs a memcpy,
 * far less than a stream's thread-pool round trip and buffering.
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
}

/** Opens a byte input as chunks, with its size when known up front (files). */
export function openInput(input: ByteInput, pool: BufferPool): OpenedInput {
  if (typeof input === 'string') {
    const fd = openSync(input, 'r');
    const chunks = new FileChunks(fd, pool);
    return { chunks, size: fstatSync(fd).size, skip: (n) => chunks.skip(n), sameFile: `/proc/self/fd/${fd}` };
  }
  if (input instanceof Uint8Array) return { chunks: fromChunks([input]), size: input.length };
  if (Symbol.asyncIterator in input) return { chunks: input, size: undefined };
  return { chunks: fromChunks(input), size: undefined };
}
