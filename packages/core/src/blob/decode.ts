/**
 * A blob opened for reading: compression sniffed from its first bytes, the uncompressed bytes streamed, and
 * the sha256 and size of both the bytes as given and the uncompressed bytes computed on the way, in one
 * pass (on a native thread for large inputs).
 */
import { LayerFormatError, StrataError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { COMPRESSION_MAGIC_BYTES, decompressor, detectCompression, pooledDecompressor, type Compression } from './compression.js';
import { openInput, READ_CHUNK, type ByteInput, type OpenedInput } from './input.js';
import { turn } from '../turns.js';
import { createByteCounter, createSha256, FileSha256, PARALLEL_HASH_THRESHOLD, type Sha256Stream } from './sha256.js';

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

/** The digests of a blob and of its uncompressed content. */
export interface DecodedDigests {
  /** `sha256:<hex>` of the blob as given. */
  digest: string;
  /** Bytes of the blob as given. */
  size: number;
  compression: Compression;
  /** `sha256:<hex>` of the uncompressed bytes (equals `digest` when uncompressed). */
  uncompressedDigest: string;
  uncompressedSize: number;
}

/** A possibly compressed blob opened for reading: the uncompressed bytes, and digests once they are read. */
export interface DecodedInput {
  compression: Compression;
  /** The uncompressed bytes; read to the end before calling `digests`. */
  stream: AsyncIterable<Uint8Array>;
  /** The digests; valid only after `stream` has been read to its end. */
  digests(): Promise<DecodedDigests>;
  /**
   * Present when bytes can be passed over without reading them (an uncompressed file read without
   * hashing, or hashed from the file itself): moves the source past `n` bytes, to be called only between
   * pulls of `stream`.
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
  /**
   * For a reader that only parses (a digest), of a file hashed on a native thread: that thread reads and
   * hashes the file as given itself, from its first byte, instead of taking the chunks this stream passes
   * on, which may then also seek past what the parse does not need. Not for a reader that acts on the bytes
   * (an apply): the digest would not be of the very bytes it read. Default false.
   */
  hashFromFile?: boolean;
  /** Told the length of each chunk of the input as given (compressed, if it is) as it is read: for progress. */
  onRead?: (bytes: number) => void;
}

/** A hash of an opened file by a thread that reads it itself; undefined where it cannot be reopened (no `/proc`). */
function fileSha256(opened: OpenedInput): FileSha256 | undefined {
  if (opened.sameFile === undefined) return undefined;
  try {
    return new FileSha256(opened.sameFile, opened.size!);
  } catch {
    return undefined; // hashed from the chunks instead, as any other reader's
  }
}

/** Sniffs the compression from the first bytes and returns the uncompressed stream with its digest taps. */
export async function decodeInput(input: ByteInput, options: DecodeOptions = {}): Promise<DecodedInput> {
  const pool = new BufferPool(READ_CHUNK);
  const opened = openInput(input, pool);
  const source = opened.chunks[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headLength = 0;
  let done = false;
  while (headLength < COMPRESSION_MAGIC_BYTES) {
    const next = await source.next();
    if (next.done) {
      done = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  // The magic numbers are in the first 8 bytes: joined only when the first chunk is shorter (a 1 MiB copy
  // into fresh memory otherwise, about 1 ms of every apply).
  const compression = detectCompression(head.length === 1 ? head[0]! : Buffer.concat(head));
  const setting = options.parallelHash ?? 'auto';
  // A pipe is hashed as a large input: what comes through one is a layer of any size, and a small one
  // hashed on a thread costs nothing measurable (a 3 KB layer piped into `strata apply -`: 110 ms either
  // way), where minbase's took 0.66 s hashed here and 0.51 s on a thread.
  const big = opened.pipe === true || (opened.size !== undefined && opened.size >= PARALLEL_HASH_THRESHOLD);
  const parallel = setting === 'auto' ? big : setting;
  const hashing = options.hash ?? true;
  const fileHash = hashing && parallel && options.hashFromFile === true ? fileSha256(opened) : undefined;
  const wire = fileHash ?? (hashing ? createSha256(parallel) : createByteCounter());
  const onRead = options.onRead;
  async function* raw(): AsyncGenerator<Uint8Array> {
    for (const chunk of head) {
      onRead?.(chunk.length);
      yield chunk;
    }
    if (done) return;
    for (let next = await source.next(); !next.done; next = await source.next()) {
      onRead?.(next.value.length);
      yield next.value;
    }
  }
  const pooled = pooledDecompressor(compression);
  const decompress = pooled ? undefined : decompressor(compression);
  // Without a decompressor the parser is the chunks' last user, so they can be moved to the hasher after
  // it; so can a pooled decompressor's input, and its output after the parser. The fallbacks (node:zlib,
  // zstd-napi) may hold their input after asking for more, so there the hasher copies.
  const wireBytes = decompress ? tap(raw(), wire) : tapAndRelease(raw(), wire, pool);
  const uncompressed = !decompress && !pooled ? wire : hashing ? createSha256(parallel) : createByteCounter();
  let stream = wireBytes;
  const outputs = pooled ? new BufferPool(pooled.outputSize) : undefined;
  if (pooled && outputs) {
    stream = tapAndRelease(typedErrors(pooled.run(wireBytes, outputs), compression), uncompressed, outputs);
  } else if (decompress) {
    stream = tap(typedErrors(decompress(wireBytes), compression), uncompressed);
  }
  // What the consumer does not need is passed over when nothing hashes it from the stream.
  const seek = opened.skip;
  let skip: ((n: number) => void) | undefined;
  if (seek && !decompress && !pooled && (!hashing || fileHash)) {
    skip = (n) => {
      fileHash?.skipped(n);
      seek(n);
    };
  }
  // The stream is read through (or given up) and the threads are done with the buffers they held.
  const retire = () => {
    pool.retire();
    outputs?.retire();
  };
  return {
    compression,
    ...(skip ? { skip } : {}),
    stream,
    digests: async () => {
      try {
        const [uncompressedDigest, digest] = await Promise.all([uncompressed.digest(), uncompressed !== wire ? wire.digest() : undefined]);
        return { digest: digest ?? uncompressedDigest, size: wire.size, compression, uncompressedDigest, uncompressedSize: uncompressed.size };
      } finally {
        retire();
      }
    },
    abort: async () => {
      await Promise.all([wire.abort(), uncompressed.abort()]);
      retire();
      // The input is given up where it stands: a file closed (at once: its reads never wait), a stream
      // destroyed once a read it has under way ends (not waited for: a stalled one may never end). Nothing
      // else would: a reader that stopped on a hostile entry held its layer file open for the process's life.
      source.return?.().catch(() => {});
    },
  };
}

/**
 * Digests a blob without interpreting its content: one pass, the bytes as given hashed as they are read
 * and, when compressed, the decompressed bytes hashed too. Throws LAYER_FORMAT for a corrupt compressed
 * stream, UNSUPPORTED for xz and bzip2.
 */
export async function digestBlob(input: ByteInput): Promise<DecodedDigests> {
  // A large plain file too: this thread reads while the native one hashes, where one thread doing both
  // (as openssl does) pays for the reads on top.
  const decoded = await decodeInput(input);
  try {
    for await (const _ of decoded.stream) {
      // Draining is the work: the taps hash as bytes pass.
      const wait = turn();
      if (wait) await wait;
    }
  } catch (error) {
    await decoded.abort();
    throw error;
  }
  return decoded.digests();
}
