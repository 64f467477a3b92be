/**
 * packDirectory: a host directory to a deterministic layer blob, digests computed on the way.
 */
import type { Writable } from 'node:stream';
import { walkHostDirectory, type HostWalkOptions } from './tree/host-walk.js';
import { writeEntries, type LayerDescriptor, type WriteLayerOptions } from './layer/write-layer.js';

/** Options of `packDirectory`. */
export interface PackDirectoryOptions extends HostWalkOptions, WriteLayerOptions {}

/**
 * Packs the tree at `dir` into a layer at `destination`. The same tree (same names, contents and
 * metadata, whatever its inode numbers) always gives the same bytes: tar order, normalised headers,
 * no user or group names, no atime/ctime. Sockets are skipped with a warning.
 */
export function packDirectory(dir: string, destination: string | Writable, options: PackDirectoryOptions = {}): Promise<LayerDescriptor> {
  return writeEntries(walkHostDirectory(dir, options), destination, options);
}
