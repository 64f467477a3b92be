/**
 * packDirectory: a host directory to a deterministic layer blob, digests computed on the way.
 */
import type { Writable } from 'node:stream';
import { walkHostDirectory, type HostWalkOptions } from './tree/host-walk.js';
import { writeLayer, type LayerDescriptor, type WriteLayerOptions } from './tar/write-layer.js';
import { CHUNK_SIZE, writeTar, type WriteTarOptions } from './tar/writer.js';
import { BufferPool } from './tar/sha256.js';

/** Options of `packDirectory`. */
export interface PackDirectoryOptions extends HostWalkOptions, Omit<WriteLayerOptions, 'pool'>, Omit<WriteTarOptions, 'pool'> {}

/**
 * Packs the tree at `dir` into a layer at `destination`. The same tree (same names, contents and
 * metadata, whatever its inode numbers) always gives the same bytes: tar order, normalised headers,
 * no user or group names, no atime/ctime. Sockets are skipped with a warning.
 */
export function packDirectory(dir: string, destination: string | Writable, options: PackDirectoryOptions = {}): Promise<LayerDescriptor> {
  // Uncompressed to a file, output buffers circulate writer → file → hasher → writer without allocation.
  const pooled = typeof destination === 'string' && (options.compression ?? 'none') === 'none';
  const pool = pooled ? new BufferPool(CHUNK_SIZE) : undefined;
  const shared = pool ? { ...options, pool } : options;
  return writeLayer(writeTar(walkHostDirectory(dir, options), shared), destination, shared);
}
