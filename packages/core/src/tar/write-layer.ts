/**
 * Writes tar bytes out as a layer blob: optional compression, with diffID, digest and size computed on the
 * way in one pass, and the blob written to a temporary name and renamed into place only when complete.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressor, layerMediaType, type Compression } from './compression.js';
import { DigestCounter, tap } from './digest.js';

/** Describes a written layer blob, as an OCI descriptor needs it. */
export interface LayerDescriptor {
  /** sha256 of the uncompressed tar. */
  diffID: string;
  /** sha256 of the blob as written. */
  digest: string;
  /** Bytes of the blob as written. */
  size: number;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
  compression: Compression;
  mediaType: string;
}

/** Options of `writeLayer`. */
export interface WriteLayerOptions {
  compression?: Compression;
  /** Compression level (gzip 1–9, default 6; zstd 1–22, default 3). */
  level?: number;
  signal?: AbortSignal;
}

/**
 * Streams `tar` into `destination` (a file path, or a writable stream the caller owns). A path is written
 * as `<path>.tmp-<pid>` and renamed on success; on failure nothing is left under either name.
 */
export async function writeLayer(
  tar: AsyncIterable<Uint8Array>,
  destination: string | Writable,
  options: WriteLayerOptions = {},
): Promise<LayerDescriptor> {
  const compression = options.compression ?? 'none';
  const plain = new DigestCounter();
  const wire = compression === 'none' ? plain : new DigestCounter();
  const transform = compressor(compression, options.level);
  const temporary = typeof destination === 'string' ? `${destination}.tmp-${process.pid}` : undefined;
  const sink = temporary !== undefined ? createWriteStream(temporary) : (destination as Writable);
  const signal = options.signal ? { signal: options.signal } : {};
  try {
    const source = Readable.from(tap(tar, plain), { objectMode: false, highWaterMark: 4 });
    if (transform) {
      const counted = async function* (compressed: AsyncIterable<Uint8Array>) {
        yield* tap(compressed, wire);
      };
      await pipeline(source, transform, counted, sink, signal);
    } else {
      await pipeline(source, sink, signal);
    }
    if (temporary !== undefined) await rename(temporary, destination as string);
  } catch (error) {
    if (temporary !== undefined) await rm(temporary, { force: true });
    throw error;
  }
  return {
    diffID: plain.digest,
    digest: wire.digest,
    size: wire.size,
    uncompressedSize: plain.size,
    compression,
    mediaType: layerMediaType(compression),
  };
}
