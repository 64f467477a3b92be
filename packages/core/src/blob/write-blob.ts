/**
 * Writes bytes out as a blob: optional compression, with the digest and size of both the uncompressed and
 * the written bytes computed on the way in one pass, and the blob written to a temporary name and renamed
 * into place only when complete.
 */
import { closeSync, createWriteStream, fdatasync, lstatSync, openSync, rename } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stream } from '../builtins.js';
import { InvalidArgumentError } from '../errors.js';
import { syncFile } from '../host/sync.js';
import type { BufferPool } from './buffer-pool.js';
import { compressor, type Compression } from './compression.js';
import type { DecodedDigests } from './decode.js';
import { tap } from './decode.js';
import type { SplicedChunk } from './file-range.js';
import { createSha256, createWritingSha256 } from './sha256.js';
import { writeAll } from '../host/write-all.js';

/** What a written blob is: the digests of the written and of the uncompressed bytes. */
export type BlobDigests = DecodedDigests;

/** Options of `writeBlob`. */
export interface WriteBlobOptions {
  compression?: Compression;
  /** Compression level (gzip 1–9, default 6; zstd 1–22, default 3). */
  level?: number;
  /** Write and hash on other threads, overlapping the main thread's work (default true). */
  parallelHash?: boolean;
  /**
   * The pool the input's chunks come from: each chunk goes back to it once written and hashed. Used only
   * for uncompressed output to a path; otherwise leave it unset.
   */
  pool?: BufferPool;
  /**
   * The file's bytes are on disk (fdatasync) before it is renamed into place and the call returns: what a
   * store that records the blob next needs, so that a crash never leaves a record of a file that was still
   * in the page cache. Writeback starts behind the writing, so the wait at the end is short. Files only.
   */
  durable?: boolean;
  signal?: AbortSignal;
}

/** Waits until `fd`'s data is on disk, on the thread pool. */
function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

/**
 * Uncompressed tar bytes to a new file at `path`, with plain synchronous writes: to the page cache they cost
 * a memcpy, far less than a stream's bookkeeping. With `parallel`, a native thread does the writes (and
 * reads the host files batches name) while this thread encodes; the file is hashed as it is written, by
 * whichever of the two has time.
 * On failure the file is removed.
 */
async function writePlainFile(
  parts: AsyncIterable<Uint8Array | SplicedChunk>,
  path: string,
  parallel: boolean,
  options: WriteBlobOptions,
): Promise<BlobDigests> {
  const fd = openSync(path, 'w', 0o644);
  const durable = options.durable ?? false;
  const writer = parallel ? createWritingSha256(fd, path, durable) : undefined;
  const hash = writer ?? createSha256(false);
  let fdOpen = true;
  try {
    for await (const part of parts) {
      options.signal?.throwIfAborted();
      const batch = part instanceof Uint8Array ? undefined : part;
      const chunk = batch ? batch.bytes : (part as Uint8Array);
      let wait: Promise<void> | undefined;
      if (batch !== undefined && batch.files.length > 0) {
        if (!writer || !options.pool) throw new InvalidArgumentError('chunks with file ranges need the writing thread and a pool');
        wait = writer.consumeBatch(chunk, batch.files, options.pool);
      } else {
        if (!writer) writeAll(fd, chunk);
        // Written (or handed to the writer): the hasher may now take the buffer itself, back to the pool after.
        wait = options.pool ? hash.consume(chunk, options.pool) : hash.update(chunk);
      }
      if (wait) await wait;
    }
    const digest = await hash.digest(); // with a writer: everything is written (and synced) once this resolves
    if (durable && !writer) await syncData(fd);
    fdOpen = false;
    closeSync(fd);
    return { digest, size: hash.size, compression: 'none', uncompressedDigest: digest, uncompressedSize: hash.size };
  } catch (error) {
    if (fdOpen) {
      await writer?.abort(); // nothing may write to the fd once it is closed: its number gets reused
      closeSync(fd);
    }
    await rm(path, { force: true });
    throw error;
  }
}

/**
 * `rename` as a promise, from the callback API: in a command, the first use of `fs/promises` loads a dozen of
 * Node's modules (1.5-2 ms of a pack's start), and the success path of a layer write uses nothing else of it.
 */
function renameFile(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => rename(from, to, (error) => (error ? reject(error) : resolve())));
}

/** Renames a finished temporary blob into place; on failure the temporary is removed. */
async function publish(temporary: string, destination: string): Promise<void> {
  try {
    await renameFile(temporary, destination);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** A temporary name beside `destination`, unique to this process and call. */
let temporaries = 0;
function temporaryFor(destination: string): string {
  return `${destination}.tmp-${process.pid}-${++temporaries}`;
}

/**
 * An uncompressed blob at `destination` from chunks of `pool` with host file ranges to splice in: a native
 * thread reads the files, writes and hashes, while this thread produces the chunks. Written to a temporary
 * name beside it and renamed on success; on failure nothing is left.
 */
export async function writeSplicedBlob(
  chunks: AsyncIterable<SplicedChunk>,
  destination: string,
  pool: BufferPool,
  options: Omit<WriteBlobOptions, 'compression' | 'pool' | 'parallelHash'> = {},
): Promise<BlobDigests> {
  const temporary = temporaryFor(destination);
  const digests = await writePlainFile(chunks, temporary, true, { ...options, pool });
  await publish(temporary, destination);
  return digests;
}

/**
 * `destination` as it is to be written. A file path is written as a temporary file renamed into place. A
 * symlink (`/dev/stdout`) or a node that is neither file nor directory (a FIFO, a terminal) becomes a
 * stream into what it names instead, as tar writes it: the rename would replace the link or node itself.
 */
export function blobDestination(destination: string | Writable): string | Writable {
  if (typeof destination !== 'string') return destination;
  const stat = lstatSync(destination, { throwIfNoEntry: false });
  return stat !== undefined && !stat.isFile() && !stat.isDirectory() ? createWriteStream(destination) : destination;
}

/**
 * Streams `bytes` into `destination` (a file path, or a writable stream the caller owns), compressed as
 * asked. A file path is written to a temporary name beside it and renamed on success; on failure nothing
 * is left under either name. A symlink, FIFO or device is written in place (see `blobDestination`).
 */
export async function writeBlob(
  bytes: AsyncIterable<Uint8Array>,
  destination: string | Writable,
  options: WriteBlobOptions = {},
): Promise<BlobDigests> {
  destination = blobDestination(destination);
  const compression = options.compression ?? 'none';
  const parallel = options.parallelHash ?? true;
  const temporary = typeof destination === 'string' ? temporaryFor(destination) : undefined;
  if (temporary !== undefined && compression === 'none') {
    const digests = await writePlainFile(bytes, temporary, parallel, options);
    await publish(temporary, destination as string);
    return digests;
  }
  const plain = createSha256(parallel);
  const wire = compression === 'none' ? plain : createSha256(parallel);
  try {
    const sink = temporary !== undefined ? createWriteStream(temporary) : (destination as Writable);
    const signal = options.signal ? { signal: options.signal } : {};
    const source = stream().Readable.from(tap(bytes, plain), { objectMode: false, highWaterMark: 4 });
    const transform = compressor(compression, options.level);
    if (transform) await pipeline(source, transform, (compressed: AsyncIterable<Uint8Array>) => tap(compressed, wire), sink, signal);
    else await pipeline(source, sink, signal);
    if (temporary !== undefined) {
      if (options.durable) await syncFile(temporary);
      await renameFile(temporary, destination as string);
    }
  } catch (error) {
    await Promise.all([plain.abort(), wire.abort()]);
    if (temporary !== undefined) await rm(temporary, { force: true });
    throw error;
  }
  const [uncompressedDigest, digest] = await Promise.all([plain.digest(), wire === plain ? undefined : wire.digest()]);
  return { digest: digest ?? uncompressedDigest, size: wire.size, compression, uncompressedDigest, uncompressedSize: plain.size };
}
