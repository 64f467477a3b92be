/**
 * squash: one layer holding a whole merged view (lowers and an optional upper), as a base image layer.
 */
import type { Writable } from 'node:stream';
import type { Entry } from '../entry.js';
import { HostLayer } from '../tree/host-layer.js';
import type { LayerTree } from '../tree/layer-tree.js';
import { MergedView } from '../union/merged-view.js';
import { isOverlayXattr } from '../whiteout.js';
import type { LayerDescriptor } from '../tar/write-layer.js';
import { writeItems, type WriteItemsOptions } from '../tar/write-items.js';
import type { WriteItem } from '../tar/writer.js';

/** Every visible entry of a view in tar order, with its content source; hardlink sets written once, then linked. */
export function* walkMerged(view: MergedView): Generator<WriteItem> {
  const firstName = new Map<string, string>();
  for (const node of view.walk()) {
    const stat = view.stat(node.path)!;
    const { nlink: _nlink, type, xattrs, ...rest } = stat;
    if (type === 'socket') continue;
    const entry: Entry = { ...rest, type, xattrs: new Map([...xattrs].filter(([n]) => !isOverlayXattr(n))) };
    if (type !== 'file') {
      yield { entry };
      continue;
    }
    if (stat.identity !== undefined) {
      const key = `${node.layer}/${stat.identity}`;
      const first = firstName.get(key);
      if (first !== undefined) {
        yield { entry: { ...entry, type: 'hardlink', size: 0, linkname: first } };
        continue;
      }
      firstName.set(key, node.path);
    }
    const layer = view.layers[node.layer]!;
    yield { entry, content: layer instanceof HostLayer ? { kind: 'path', path: layer.hostPath(node.path) } : { kind: 'stream', stream: layer.read(node.path) } };
  }
}

/** Options of `squash`. */
export type SquashOptions = WriteItemsOptions;

/** Writes the merged view of `lowers` (bottom first) and `upper` as one layer (no whiteouts: a base layer). */
export function squash(lowers: readonly LayerTree[], upper: LayerTree | undefined, destination: string | Writable, options: SquashOptions = {}): Promise<LayerDescriptor> {
  return writeItems(walkMerged(new MergedView(lowers, upper)), destination, options);
}
