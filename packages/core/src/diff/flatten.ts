/**
 * flatten: N layers to one, streaming, without extracting anything. Pass one folds every layer's entries
 * (metadata only) into the final state of each path; pass two writes the entries that survive, layer by
 * layer, content straight from the source: plain layer files from the entries pass one kept (content
 * copied by offset), compressed ones streamed again. Memory grows with the number of paths.
 */
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { InvalidArgumentError } from '../errors.js';
import { quote } from '../quote.js';
import { parentOf, ROOT } from '../path.js';
import type { ByteInput } from '../blob/input.js';
import { readLayer, type ReadLayerOptions } from '../layer/read-layer.js';
import { writeEntries, type LayerDescriptor, type WriteLayerOptions } from '../layer/write-layer.js';
import type { Entry } from '../entry.js';
import type { ContentSource, WriteItem } from '../tar/writer.js';
import { detectFileCompression } from '../blob/compression.js';
import { opaqueMarkerPathFor, whiteoutPathFor } from '../whiteout.js';
import { foldLayers } from './fold.js';
import { markerEntry } from './entries.js';

/** Options of `flatten`. */
export interface FlattenOptions extends WriteLayerOptions, Omit<ReadLayerOptions, 'parallelHash' | 'hash'> {}


/**
 * One layer equivalent to `layers` (bottom first) applied in order, onto any base: later layers win;
 * deletions and opaque directories are folded in, and kept as whiteouts and opaque markers only where
 * they may still hide something of the base. A hardlink whose target a later layer replaced keeps the
 * content it linked to. Entries come layer by layer, each layer's in its own order (deterministic).
 */
export async function flatten(layers: readonly ByteInput[], destination: string | Writable, options: FlattenOptions = {}): Promise<LayerDescriptor> {
  for (const layer of layers) {
    if (typeof layer !== 'string' && !(layer instanceof Uint8Array)) throw new InvalidArgumentError('flatten reads each layer twice: give paths or bytes');
    if (typeof layer === 'string' && !statSync(layer).isFile()) throw new InvalidArgumentError(`flatten reads each layer twice: ${quote(layer)} is not a file (a pipe can be read once)`);
  }
  // Uncompressed layer files are read in place: the fold keeps their entries with offsets, so pass two
  // does not parse them again, and a surviving file's content is a range of its layer file, which the
  // writer copies (off this thread). Only compressed layers are read twice and stream their content here.
  const inPlace = layers.map((layer) => typeof layer === 'string' && detectFileCompression(layer) === 'none');
  const { final, deleted, opaque, links, kept } = await foldLayers(layers, { ...options, keep: (i) => inPlace[i]! });

  /** Layer `i`'s entries for pass two: as the fold kept them, or read again. */
  async function* entriesOf(i: number): AsyncGenerator<{ entry: Entry; ordinal: number; content: () => ContentSource }> {
    const keptEntries = kept[i];
    // A sparse file's content is not one range of its layer: a layer holding one is read again.
    if (keptEntries !== undefined && keptEntries.every(({ dataOffset }) => dataOffset !== undefined)) {
      const path = layers[i] as string;
      for (const { entry, ordinal, dataOffset } of keptEntries) yield { entry, ordinal, content: () => ({ kind: 'path', path, offset: dataOffset! }) };
      return;
    }
    let ordinal = -1;
    for await (const { entry, body } of readLayer(layers[i]!, { ...options, hash: false })) {
      ordinal++;
      yield { entry, ordinal, content: () => ({ kind: 'stream', stream: body }) };
    }
  }

  async function* items(): AsyncGenerator<WriteItem> {
    for (const path of [...deleted].sort()) if (!isUnderDeleted(path, deleted)) yield { entry: markerEntry(whiteoutPathFor(path)) };
    const written = new Set<string>();
    // A layer nothing survives from (every name replaced or deleted above it) is not read again.
    const contributing = new Set<number>();
    for (const survivor of final.values()) contributing.add(survivor.layer);
    for (let i = 0; i < layers.length; i++) {
      if (!contributing.has(i)) continue;
      const survives = (path: string) => final.get(path)?.layer === i;
      for await (const { entry, ordinal, content } of entriesOf(i)) {
        const survivor = final.get(entry.path);
        const mine = survivor !== undefined && survivor.layer === i && survivor.ordinal === ordinal;
        if (entry.type === 'file' && !mine) {
          // Replaced later, but names of this layer still link to it: its content goes out under the first
          // of them, and the others link to that one.
          const names = (links[i]!.get(entry.path) ?? []).filter(survives);
          if (names.length > 0) {
            yield { entry: { ...entry, path: names[0]! }, content: content() };
            for (const name of names.slice(1)) yield { entry: { ...final.get(name)!.entry, linkname: names[0]! } };
            for (const name of names) written.add(name);
          }
          continue;
        }
        if (!mine || written.has(entry.path)) continue;
        if (entry.type === 'hardlink' && !survives(entry.linkname!)) continue; // written with its target, above
        yield entry.type === 'file' ? { entry, content: content() } : { entry };
        written.add(entry.path);
        if (entry.type === 'directory' && opaque.has(entry.path)) {
          yield { entry: markerEntry(opaqueMarkerPathFor(entry.path)) };
          opaque.delete(entry.path);
        }
      }
    }
    for (const dir of [...opaque].sort()) yield { entry: markerEntry(opaqueMarkerPathFor(dir)) }; // dirs from earlier layers
  }
  return writeEntries(items(), destination, options);
}

function isUnderDeleted(path: string, deleted: Set<string>): boolean {
  for (let p = parentOf(path); p !== ROOT; p = parentOf(p)) if (deleted.has(p)) return true;
  return false;
}

