/**
 * squash: one layer holding a whole merged view (lowers and an optional upper), as a base image layer.
 */
import type { Writable } from 'node:stream';
import type { LayerTree } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import { asHardlink, contentOf, entryFromStat, HardlinkSets } from './entries.js';
import { writeEntries, type LayerDescriptor, type WriteLayerOptions } from '../layer/write-layer.js';
import type { WriteItem } from '../tar/writer.js';

/** Every visible entry of a view in tar order, with its content source; hardlink sets written once, then linked. */
export function* walkMerged(view: MergedView): Generator<WriteItem> {
  const links = new HardlinkSets();
  for (const node of view.walk()) {
    const stat = view.stat(node.path)!;
    if (stat.type === 'socket') continue;
    const entry = entryFromStat(stat);
    const first = stat.type === 'file' ? links.claim(stat.identity === undefined ? undefined : `${node.layer}/${stat.identity}`, node.path) : undefined;
    if (first !== undefined) yield { entry: asHardlink(entry, first) };
    else yield stat.type === 'file' ? { entry, content: contentOf(view, node.path) } : { entry };
  }
}

/** Options of `squash`. */
export type SquashOptions = WriteLayerOptions;

/** Writes the merged view of `lowers` (bottom first) and `upper` as one layer (no whiteouts: a base layer). */
export function squash(lowers: readonly LayerTree[], upper: LayerTree | undefined, destination: string | Writable, options: SquashOptions = {}): Promise<LayerDescriptor> {
  return writeEntries(walkMerged(new MergedView(lowers, upper)), destination, options);
}
