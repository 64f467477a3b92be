/**
 * writeItems: entries to a layer blob, the one path every layer producer takes (pack, diffs, flatten,
 * squash). Uncompressed output to a file circulates its buffers encoder → writing thread → encoder, so a
 * layer is written without an allocation (or a page fault) per chunk; the writing thread also reads host
 * files' content, leaving this thread to walk and encode headers, and the file is hashed as it is written.
 */
import type { Writable } from 'node:stream';
import { BufferPool } from './sha256.js';
import { layerDestination, writeBatchedLayer, writeLayer, type LayerDescriptor, type WriteLayerOptions } from './write-layer.js';
import { CHUNK_SIZE, writeTar, writeTarBatches, type WriteItem, type WriteTarOptions } from './writer.js';

/** Options of `writeItems`. */
export interface WriteItemsOptions extends Omit<WriteLayerOptions, 'pool'>, Omit<WriteTarOptions, 'pool'> {}

/** Writes `items` (in their order) as a layer at `destination`; diffID, digest and size in one pass. */
export function writeItems(
  items: AsyncIterable<WriteItem> | Iterable<WriteItem>,
  destination: string | Writable,
  options: WriteItemsOptions = {},
): Promise<LayerDescriptor> {
  const target = layerDestination(destination);
  const pooled = typeof target === 'string' && (options.compression ?? 'none') === 'none';
  if (pooled && (options.parallelHash ?? true)) {
    // The common case: host files are read and written by the writing thread, off this one.
    const pool = new BufferPool(CHUNK_SIZE);
    return writeBatchedLayer(writeTarBatches(items, { ...options, pool }), target, pool, options);
  }
  const shared = pooled ? { ...options, pool: new BufferPool(CHUNK_SIZE) } : options;
  return writeLayer(writeTar(items, shared), target, shared);
}
