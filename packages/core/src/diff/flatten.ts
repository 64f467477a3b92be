/**
 * flatten: N layers to one, streaming, without extracting anything. Pass one folds every layer's entries
 * (metadata only) into the final state of each path; pass two streams each layer again and writes the
 * entries that survive, content straight from the source. Memory grows with the number of paths.
 */
import type { Writable } from 'node:stream';
import { parentOf, ROOT } from '../path.js';
import type { ByteInput } from '../tar/digest.js';
import { readLayer, type ReadLayerOptions } from '../tar/reader.js';
import type { LayerDescriptor } from '../tar/write-layer.js';
import { writeItems, type WriteItemsOptions } from '../tar/write-items.js';
import type { WriteItem } from '../tar/writer.js';
import { opaqueMarkerPathFor, whiteoutPathFor } from '../whiteout.js';
import { foldLayers } from './fold.js';
import { markerEntry } from './entries.js';

/** Options of `flatten`. */
export interface FlattenOptions extends WriteItemsOptions, Omit<ReadLayerOptions, 'parallelHash' | 'hash'> {}


/**
 * One layer equivalent to `layers` (bottom first) applied in order, onto any base: later layers win;
 * deletions and opaque directories are folded in, and kept as whiteouts and opaque markers only where
 * they may still hide something of the base. A hardlink whose target a later layer replaced keeps the
 * content it linked to. Entries come layer by layer, each layer's in its own order (deterministic).
 */
export async function flatten(layers: readonly ByteInput[], destination: string | Writable, options: FlattenOptions = {}): Promise<LayerDescriptor> {
  for (const layer of layers) {
    if (typeof layer !== 'string' && !(layer instanceof Uint8Array)) throw new TypeError('flatten reads each layer twice: give paths or bytes');
  }
  const { final, deleted, opaque, links } = await foldLayers(layers, options);

  async function* items(): AsyncGenerator<WriteItem> {
    for (const path of [...deleted].sort()) if (!isUnderDeleted(path, deleted)) yield { entry: markerEntry(whiteoutPathFor(path)) };
    const written = new Set<string>();
    for (const [i, layer] of layers.entries()) {
      const survives = (path: string) => final.get(path)?.layer === i;
      let ordinal = -1;
      for await (const { entry, body } of readLayer(layer, { ...options, hash: false })) {
        ordinal++;
        const survivor = final.get(entry.path);
        const mine = survivor !== undefined && survivor.layer === i && survivor.ordinal === ordinal;
        if (entry.type === 'file' && !mine) {
          // Replaced later, but names of this layer still link to it: its content goes out under the first
          // of them, and the others link to that one.
          const names = (links[i]!.get(entry.path) ?? []).filter(survives);
          if (names.length > 0) {
            yield { entry: { ...entry, path: names[0]! }, content: { kind: 'stream', stream: body } };
            for (const name of names.slice(1)) yield { entry: { ...final.get(name)!.entry, linkname: names[0]! } };
            for (const name of names) written.add(name);
          }
          continue;
        }
        if (!mine || written.has(entry.path)) continue;
        if (entry.type === 'hardlink' && !survives(entry.linkname!)) continue; // written with its target, above
        yield entry.type === 'file' ? { entry, content: { kind: 'stream', stream: body } } : { entry };
        written.add(entry.path);
        if (entry.type === 'directory' && opaque.has(entry.path)) {
          yield { entry: markerEntry(opaqueMarkerPathFor(entry.path)) };
          opaque.delete(entry.path);
        }
      }
    }
    for (const dir of [...opaque].sort()) yield { entry: markerEntry(opaqueMarkerPathFor(dir)) }; // dirs from earlier layers
  }
  return writeItems(items(), destination, options);
}

function isUnderDeleted(path: string, deleted: Set<string>): boolean {
  for (let p = parentOf(path); p !== ROOT; p = parentOf(p)) if (deleted.has(p)) return true;
  return false;
}

