/**
 * The merged listing of a stack of layers, computed in memory from their entries alone (no extraction):
 * what `ls` of the applied stack would show.
 */
import { foldLayers } from './diff/fold.js';
import type { Entry } from './entry.js';
import { compareTarOrder } from './path.js';
import type { ByteInput } from './blob/input.js';
import type { ReadLayerOptions } from './layer/read-layer.js';

/**
 * Applies `layers` (bottom first) to an empty tree in memory and returns the surviving entries in tar
 * order, whiteouts and opaque markers consumed. Hardlink entries keep their `hardlink` type and target.
 * Memory grows with the number of paths, not with content. Throws as `readLayer` does.
 */
export async function mergedListing(layers: readonly ByteInput[], options: Omit<ReadLayerOptions, 'hash'> = {}): Promise<Entry[]> {
  const { final } = await foldLayers(layers, options);
  return [...final.values()].map((s) => s.entry).sort((a, b) => compareTarOrder(a.path, b.path));
}
