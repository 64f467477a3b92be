/**
 * foldLayers: a stack of layers applied, in memory, to nothing: the entries that survive (each with the
 * layer and position it came from), the deletions and opaque markers that may still hide a base, and each
 * layer's hardlinks. Metadata only, so memory grows with the number of paths. Shared by `mergedListing`
 * (which shows the survivors) and `flatten` (which writes them).
 */
import type { Entry } from '../entry.js';
import { isWithin, parentOf, ROOT } from '../path.js';
import type { ByteInput } from '../blob/input.js';
import { readLayer, type ReadLayerOptions } from '../layer/read-layer.js';
import { classifyWhiteout } from '../whiteout.js';

/** An entry that survives the stack. */
export interface Survivor {
  layer: number;
  /** Position of the entry among its layer's entries: how a second pass over the layer recognises it. */
  ordinal: number;
  entry: Entry;
}

/** The state of a stack after all of its layers. */
export interface Fold {
  final: Map<string, Survivor>;
  /** Paths deleted and not re-created by the stack: they may still hide something of a base. */
  deleted: Set<string>;
  /** Directories made opaque and still standing. */
  opaque: Set<string>;
  /** Per layer: hardlink target → names linking to it in that layer. */
  links: Array<Map<string, string[]>>;
  /** Per layer asked for (`FoldOptions.keep`): its entries (not whiteouts or markers) in order, with offsets. */
  kept: Array<KeptEntry[] | undefined>;
}

/** An entry of a layer as the fold read it: a second pass over an uncompressed layer can use these instead. */
export interface KeptEntry {
  ordinal: number;
  entry: Entry;
  /** Archive offset of its content; undefined for a sparse file (see `TarEntry.dataOffset`). */
  dataOffset: number | undefined;
}

/** Options of `foldLayers`. */
export interface FoldOptions extends Omit<ReadLayerOptions, 'hash'> {
  /** Which layers' entries to keep (see `Fold.kept`); none by default. */
  keep?: (layer: number) => boolean;
}

/**
 * Reads `layers` (bottom first) once each, headers only. Within a layer, deletions hide only what came
 * from below, wherever they stand; a non-directory replaces a whole subtree. Throws as `readLayer` does.
 */
export async function foldLayers(layers: readonly ByteInput[], options: FoldOptions = {}): Promise<Fold> {
  const { keep, ...readOptions } = options;
  const final = new Map<string, Survivor>();
  const kept: Array<KeptEntry[] | undefined> = [];
  const deleted = new Set<string>();
  const opaque = new Set<string>();
  const links: Array<Map<string, string[]>> = [];

  /** Paths of `final` (and the directories they imply) by parent: subtrees are dropped without a scan of everything. */
  const children = new Map<string, Set<string>>();
  const survive = (path: string, survivor: Survivor): void => {
    final.set(path, survivor);
    for (let p = path; p !== ROOT; p = parentOf(p)) {
      const parent = parentOf(p);
      let kids = children.get(parent);
      if (kids === undefined) children.set(parent, (kids = new Set()));
      else if (kids.has(p)) break; // the rest of the chain is indexed already
      kids.add(p);
    }
  };

  /** Removes what layers before `layer` left strictly beneath `path`. */
  const dropBelow = (path: string, layer: number): void => {
    const kids = children.get(path);
    if (kids === undefined) return;
    for (const kid of kids) {
      dropBelow(kid, layer);
      if ((final.get(kid)?.layer ?? layer) < layer) final.delete(kid);
      if (!final.has(kid) && !children.has(kid)) kids.delete(kid);
    }
    if (kids.size === 0) children.delete(path);
  };

  /**
   * Removes what layers before `layer` left beneath `path`. A non-directory has nothing beneath it; a
   * directory, or a path only implied by its children, may.
   */
  const dropSubtree = (path: string, layer: number): void => {
    const standing = final.get(path);
    if (standing !== undefined && standing.entry.type !== 'directory') return;
    dropBelow(path, layer);
  };

  for (const [i, layer] of layers.entries()) {
    const linkMap = new Map<string, string[]>();
    links.push(linkMap);
    const added = new Set<string>();
    const whiteouts: string[] = [];
    const opaques: string[] = [];
    const keeping: KeptEntry[] | undefined = keep?.(i) ? [] : undefined;
    kept.push(keeping);
    let ordinal = -1;
    for await (const { entry, dataOffset } of readLayer(layer, { ...readOptions, hash: false })) {
      ordinal++;
      const kind = classifyWhiteout(entry.path);
      if (kind.kind === 'whiteout') whiteouts.push(kind.target);
      else if (kind.kind === 'opaque') opaques.push(kind.dir);
      else if (kind.kind === 'none' && entry.path !== ROOT) {
        if (entry.type !== 'directory') dropSubtree(entry.path, i); // a non-directory replaces a whole directory
        survive(entry.path, { layer: i, ordinal, entry });
        keeping?.push({ ordinal, entry, dataOffset });
        added.add(entry.path);
        deleted.delete(entry.path);
        if (entry.type === 'hardlink') linkMap.set(entry.linkname!, [...(linkMap.get(entry.linkname!) ?? []), entry.path]);
      }
    }
    for (const target of whiteouts) {
      if (added.has(target)) continue;
      dropSubtree(target, i);
      if ((final.get(target)?.layer ?? i) < i) final.delete(target);
      deleted.add(target);
    }
    for (const dir of opaques) {
      dropSubtree(dir, i);
      for (const p of deleted) if (p !== dir && isWithin(p, dir)) deleted.delete(p); // the marker says it all
      opaque.add(dir);
    }
  }
  // A deletion or opaque marker matters only where nothing of the stack re-created the path.
  for (const p of deleted) if (final.has(p)) deleted.delete(p);
  for (const dir of opaque) if (final.get(dir)?.entry.type !== 'directory') opaque.delete(dir);
  return { final, deleted, opaque, links, kept };
}
