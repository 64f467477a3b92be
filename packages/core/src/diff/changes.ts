/**
 * Change sets with their content, and their serialisation as an OCI layer tarball: deletions as `.wh.`
 * entries, opaque directories as `.wh..wh..opq`, through the deterministic writer.
 */
import type { Writable } from 'node:stream';
import type { Change, Entry } from '../entry.js';
import { ROOT } from '../path.js';
import { writeEntries, type LayerDescriptor, type WriteLayerOptions } from '../layer/write-layer.js';
import type { ContentSource, WriteItem } from '../tar/writer.js';
import { opaqueMarkerPathFor, whiteoutPathFor } from '../whiteout.js';
import { markerEntry } from './entries.js';

/** A `Change` that carries, for added or modified files, where their content comes from. */
export type ContentChange =
  | { readonly kind: 'add' | 'modify'; readonly entry: Entry; readonly content?: ContentSource }
  | Extract<Change, { kind: 'delete' | 'opaque' }>;

/** The tar entry for one change; undefined for the root, which a layer has no entry for. */
function itemOf(change: ContentChange): WriteItem | undefined {
  if (change.kind === 'delete') return { entry: markerEntry(whiteoutPathFor(change.path)) };
  if (change.kind === 'opaque') return { entry: markerEntry(opaqueMarkerPathFor(change.path)) };
  if (change.entry.path === ROOT) return undefined;
  return change.content ? { entry: change.entry, content: change.content } : { entry: change.entry };
}

function* syncItems(changes: Iterable<ContentChange>): Generator<WriteItem> {
  for (const change of changes) {
    const item = itemOf(change);
    if (item) yield item;
  }
}

async function* asyncItems(changes: AsyncIterable<ContentChange>): AsyncGenerator<WriteItem> {
  for await (const change of changes) {
    const item = itemOf(change);
    if (item) yield item;
  }
}

/** The tar entries for a change set, in its order: synchronous for a synchronous change set (as `diffUpper`'s). */
export function changeItems(changes: AsyncIterable<ContentChange> | Iterable<ContentChange>): Iterable<WriteItem> | AsyncIterable<WriteItem> {
  return Symbol.iterator in changes ? syncItems(changes) : asyncItems(changes);
}

/** Options of `writeChanges`. */
export type WriteChangesOptions = WriteLayerOptions;

/**
 * Serialises a change set as a layer blob at `destination`, returning its diffID, digest and size (one
 * pass). Ordering is the change set's own; diffs emit tar order.
 */
export function writeChanges(
  changes: AsyncIterable<ContentChange> | Iterable<ContentChange>,
  destination: string | Writable,
  options: WriteChangesOptions = {},
): Promise<LayerDescriptor> {
  return writeEntries(changeItems(changes), destination, options);
}
