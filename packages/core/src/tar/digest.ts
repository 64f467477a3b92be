/**
 * Digests of layers: diffID (sha256 of the uncompressed tar), digest and size of the bytes on the wire,
 * computed while the bytes stream past; and chainID, per the OCI image spec.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { LayerFormatError, StrataError } from '../errors.js';
import { detectCompression, decompressor, type Compression } from './compression.js';

/** A running sha256 and byte count over a stream. */
export class DigestCounter {
  readonly #hash: Hash = createHash('sha256');
  #size = 0;
  #digest: string | undefined;

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
  }

  /** `sha256:<hex>`; finalises the hash, so call once all bytes are in. */
  get digest(): string {
    this.#digest ??= `sha256:${this.#hash.digest('hex')}`;
    return this.#digest;
  }

  get size(): number {
    return this.#size;
  }
}

/** Passes chunks through unchanged, feeding them to `counter` on the way. */
export async function* tap(source: AsyncIterable<Uint8Array>, counter: DigestCounter): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    counter.update(chunk);
    yield chunk;
  }
}

/** Anything a layer can be read from: a file path, a Node stream, bytes in memory, or (async) chunks. */
export type ByteInput = string | Readable | Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Opens a byte input as an async iterable of chunks. */
export function openInput(input: ByteInput): AsyncIterable<Uint8Array> {
  if (typeof input === 'string') return createReadStream(input, { highWaterMark: 1024 * 1024 });
  if (input instanceof Uint8Array) return fromChunks([input]);
  if (Symbol.asyncIterator in input) return input;
  return fromChunks(input);
}

async function* fromChunks(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
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

/** Opens a possibly compressed layer: the uncompressed bytes, and digests that settle once they are read. */
export interface DecodedInput {
  compression: Compression;
  /** The uncompressed tar bytes; read it to the end before calling `digests`. */
  stream: AsyncIterable<Uint8Array>;
  /** The digests; valid only after `stream` has been read to its end. */
  digests(): LayerDigests;
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

/** Sniffs the compression from the first bytes and returns the decompressed stream with its digest taps. */
export async function decodeInput(input: ByteInput): Promise<DecodedInput> {
  const source = openInput(input)[Symbol.asyncIterator]();
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
  const wire = new DigestCounter();
  async function* raw(): AsyncGenerator<Uint8Array> {
    for (const chunk of head) yield chunk;
    if (done) return;
    for (let next = await source.next(); !next.done; next = await source.next()) yield next.value;
  }
  const wireBytes = tap(raw(), wire);
  const transform = decompressor(compression);
  let plain: AsyncIterable<Uint8Array> = wireBytes;
  if (transform) {
    const from = Readable.from(wireBytes, { objectMode: false });
    from.on('error', (error) => transform.destroy(error));
    plain = from.pipe(transform);
  }
  const uncompressed = transform ? new DigestCounter() : wire;
  return {
    compression,
    stream: transform ? tap(typedErrors(plain, compression), uncompressed) : plain,
    digests: () => ({
      diffID: uncompressed.digest,
      uncompressedSize: uncompressed.size,
      digest: wire.digest,
      size: wire.size,
      compression,
    }),
  };
}

/**
 * Digests a layer blob without parsing it: one pass, the wire bytes hashed as they are read and, when
 * compressed, the decompressed bytes hashed too.
 */
export async function digestLayer(input: ByteInput): Promise<LayerDigests> {
  const decoded = await decodeInput(input);
  for await (const _ of decoded.stream) {
    // Draining is the work: the taps hash as bytes pass.
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
