/**
 * writeEntries: entries to a layer blob, the one path every layer producer takes (pack, diffs, flatten,
 * squash). Uncompressed output to a file circulates its buffers encoder → writing thread → encoder, so a
 * layer is written without an allocation (or a page fault) per chunk; the writing thread also reads host
 * files' content, leaving this thread to walk and encode headers, and the file is hashed as it is written.
 */
import type { Writable } from 'node:stream';
import { BufferPool } from '../blob/buffer-pool.js';
import type { Compression } from '../blob/compression.js';
import { blobDestination, writeBlob, writeSplicedBlob, type BlobDigests, type WriteBlobOptions } from '../blob/write-blob.js';
import { CHUNK_SIZE, writeTar, writeTarBatches, type WriteItem, type WriteTarOptions } from '../tar/writer.js';

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

/** The OCI media type of a layer with this compression. */
export function layerMediaType(compression: Compression): string {
  const base = 'application/vnd.oci.image.layer.v1.tar';
  return compression === 'none' ? base : `${base}+${compression}`;
}

function describe(d: BlobDigests): LayerDescriptor {
  return {
    diffID: d.uncompressedDigest,
    digest: d.digest,
    size: d.size,
    uncompressedSize: d.uncompressedSize,
    compression: d.compression,
    mediaType: layerMediaType(d.compression),
  };
}

/** Options of every layer writer: compression, `SOURCE_DATE_EPOCH` clamping, abort. */
export interface WriteLayerOptions extends Omit<WriteBlobOptions, 'pool'>, Omit<WriteTarOptions, 'pool'> {}

/**
 * Writes `items` (in their order) as a layer at `destination` (a file path, written whole or not at all,
 * or a stream); diffID, digest and size in one pass. Throws INVALID_ARGUMENT for content that does not
 * match its entry's size, FAILED_PRECONDITION for a host file that shrank while read.
 */
export async function writeEntries(
  items: AsyncIterable<WriteItem> | Iterable<WriteItem>,
  destination: string | Writable,
  options: WriteLayerOptions = {},
): Promise<LayerDescriptor> {
  const target = blobDestination(destination);
  const pooled = typeof target === 'string' && (options.compression ?? 'none') === 'none';
  const pool = pooled ? new BufferPool(CHUNK_SIZE) : undefined;
  try {
    if (pool && typeof target === 'string' && (options.parallelHash ?? true)) {
      // The common case: host files are read and written by the writing thread, off this one.
      return describe(await writeSplicedBlob(writeTarBatches(items, { ...options, pool }), target, pool, options));
    }
    const shared = pool ? { ...options, pool } : options;
    return describe(await writeBlob(writeTar(items, shared), target, shared));
  } finally {
    pool?.retire();
  }
}
