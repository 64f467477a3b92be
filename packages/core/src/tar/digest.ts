/**
 * Digests of layers: diffID (sha256 of the uncompressed tar), digest and size of the bytes on the wire,
 * computed while the bytes stream past; and chainID, per the OCI image spec.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { LayerFormatError, StrataError } from '../errors.js';
import { detectCompression, decompressor, type Compression } from './compression.js';
import { BufferPool, createByteCounter, createSha256, PARALLEL_HASH_THRESHOLD, type Sha256Stream } from './sha256.js';

/** Passes chunks through unchanged, feeding them to `hash` on the way (waiting when it asks to). */
export async function* tap(source: AsyncIterable<Uint8Array>, hash: Sha256Stream): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    const wait = hash.update(chunk);
    if (wait) await wait;
    yield chunk;
  }
}

/**
 * Like `tap`, for chunks from `pool` that nothing else keeps: each is hashed once its consumer has asked for
 * the next one (the validity window readers promise), by moving its buffer to `hash` instead of copying it.
 */
async function* tapAndRelease(source: AsyncIterable<Uint8Array>, hash: Sha256Stream, pool: BufferPool): AsyncGenerator<Uint8Array> {
  let previous: Uint8Array | undefined;
  for await (const chunk of source) {
    if (previous !== undefined) {
      const wait = hash.consume(previous, pool);
      if (wait) await wait;
    }
    yield chunk;
    previous = chunk;
  }
  if (previous !== undefined) await hash.consume(previous, pool);
}

/** Anything a layer can be read from: a file path, a Node stream, bytes in memory, or (async) chunks. */
export type ByteInput = string | Readable | Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

const READ_CHUNK = 1024 * 1024;

/**
 * A file's bytes in 1 MiB chunks, read with plain synchronous reads: from the page cache that costs a
 * memcpy, far less than a stream's thread-pool round trip and buffering. Buffers come from `pool`, which
 * the hashing side refills once it is done with them: no allocation and no page faults per chunk.
 */
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
        if (n === 0) return;
        this.#position += n;
        yield n === READ_CHUNK ? buffer : buffer.subarray(0, n);
      }
    } finally {
      closeSync(this.fd);
    }
  }
}

async function* fromChunks(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

/** Opens a byte input as chunks, with its size when known up front (files). */
function openInput(input: ByteInput, pool: BufferPool): { chunks: AsyncIterable<Uint8Array>; size: number | undefined; skip?: (n: number) => void } {
  if (typeof input === 'string') {
    const fd = openSync(input, 'r');
    const chunks = new FileChunks(fd, pool);
    return { chunks, size: fstatSync(fd).size, skip: (n) => chunks.skip(n) };
  }
  if (input instanceof Uint8Array) return { chunks: fromChunks([input]), size: input.length };
  if (Symbol.asyncIterator in input) return { chunks: input, size: undefined };
  return { chunks: fromChunks(input), size: undefined };
}

/** The digests of one layer blob. */
export interface LayerDigests {
  /** sha256 of the uncompressed tar stream, trailing bytes included. */
  diffID: string;
  /** Bytes of the uncompressed tar stream. */
  uncompressedSize: number;
  /** sha256 of the blob as given (equals diffID when uncompressed). */
  digest: string;
  /** Bytes of the blob as given. */
  size: number;
  compression: Compression;
}

/** A possibly compressed layer opened for reading: the uncompressed bytes, and digests once they are read. */
export interface DecodedInput {
  compression: Compression;
  /** The uncompressed tar bytes; read it to the end before calling `digests`. */
  stream: AsyncIterable<Uint8Array>;
  /** The digests; valid only after `stream` has been read to its end. */
  digests(): Promise<LayerDigests>;
  /**
   * Present when bytes can be passed over without reading them (an uncompressed file read without
   * hashing): moves the source past `n` bytes, to be called only between pulls of `stream`.
   */
  skip?: (n: number) => void;
  /** Stops the hashing threads of a stream that will not be read to its end (after an error). */
  abort(): Promise<void>;
}

/** Turns a decompressor's own errors into LAYER_FORMAT; errors from reading the input pass unchanged. */
async function* typedErrors(source: AsyncIterable<Uint8Array>, compression: Compression): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (error) {
    if (error instanceof StrataError || (error as NodeJS.ErrnoException).syscall !== undefined) throw error;
    throw new LayerFormatError(`corrupt ${compression} stream: ${(error as Error).message}`, { cause: error });
  }
}

/** Options of `decodeInput`. */
export interface DecodeOptions {
  /** Hash on a native thread: `auto` (default) does so for files of 8 MiB and more. */
  parallelHash?: boolean | 'auto';
  /** Compute digests (default true); without them, `digests()` rejects and reading costs no hashing. */
  hash?: boolean;
}

/** Sniffs the compression from the first bytes and returns the decompressed stream with its digest taps. */
export async function decodeInput(input: ByteInput, options: DecodeOptions = {}): Promise<DecodedInput> {
  const pool = new BufferPool(READ_CHUNK);
  const opened = openInput(input, pool);
  const source = opened.chunks[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headLength = 0;
  let done = false;
  while (headLength < 6) {
    const next = await source.next();
    if (next.done) {
      done = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  const compression = detectCompression(Buffer.concat(head));
  const setting = options.parallelHash ?? 'auto';
  const big = opened.size !== undefined && opened.size >= PARALLEL_HASH_THRESHOLD;
  const parallel = setting === 'auto' ? big : setting;
  const hashing = options.hash ?? true;
  const wire = hashing ? createSha256(parallel) : createByteCounter();
  async function* raw(): AsyncGenerator<Uint8Array> {
    for (const chunk of head) yield chunk;
    if (done) return;
    for (let next = await source.next(); !next.done; next = await source.next()) yield next.value;
  }
  const transform = decompressor(compression);
  // Without a decompressor the parser is the chunks' last user, so they can be moved to the hasher after
  // it; a decompressor holds its input asynchronously, so there the hasher copies.
  const wireBytes = transform ? tap(raw(), wire) : tapAndRelease(raw(), wire, pool);
  let plain: AsyncIterable<Uint8Array> = wireBytes;
  if (transform) {
    const from = Readable.from(wireBytes, { objectMode: false });
    from.on('error', (error) => transform.destroy(error));
    plain = from.pipe(transform);
  }
  const uncompressed = !transform ? wire : hashing ? createSha256(parallel) : createByteCounter();
  return {
    compression,
    ...(!transform && !hashing && opened.skip ? { skip: opened.skip } : {}),
    stream: transform ? tap(typedErrors(plain, compression), uncompressed) : plain,
    digests: async () => {
      const [diffID, digest] = await Promise.all([uncompressed.digest(), transform ? wire.digest() : undefined]);
      return { diffID, uncompressedSize: uncompressed.size, digest: digest ?? diffID, size: wire.size, compression };
    },
    abort: async () => {
      await Promise.all([wire.abort(), uncompressed.abort()]);
    },
  };
}

/**
 * Digests a layer blob without parsing it: one pass, the wire bytes hashed as they are read and, when
 * compressed, the decompressed bytes hashed too.
 */
export async function digestLayer(input: ByteInput): Promise<LayerDigests> {
  // A large plain file too: this thread reads while the native one hashes, where one thread doing both
  // (as openssl does) pays for the reads on top.
  const decoded = await decodeInput(input);
  try {
    for await (const _ of decoded.stream) {
      // Draining is the work: the taps hash as bytes pass.
    }
  } catch (error) {
    await decoded.abort();
    throw error;
  }
  return decoded.digests();
}

/** The chainID of a stack of diffIDs, bottom first: ChainID(L0) = DiffID(L0), ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). */
export function chainID(diffIDs: readonly string[]): string {
  if (diffIDs.length === 0) throw new RangeError('chainID of an empty stack');
  let chain = diffIDs[0]!;
  for (let i = 1; i < diffIDs.length; i++) {
    chain = `sha256:${createHash('sha256').update(`${chain} ${diffIDs[i]}`).digest('hex')}`;
  }
  return chain;
}
