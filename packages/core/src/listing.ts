/**
 * The merged listing of a stack of layers, computed in memory from their entries alone (no extraction):
 * what `ls` of the applied stack would show.
 */
import type { Entry } from './entry.js';
import { compareTarOrder, isWithin, parentOf, ROOT } from './path.js';
import type { ByteInput } from './tar/digest.js';
import { readLayer, type ReadLayerOptions } from './tar/reader.js';
import { classifyWhiteout } from './whiteout.js';

/**
 * Applies `layers` (bottom first) to an empty tree in memory and returns the surviving entries in tar
 * order, whiteouts and opaque markers consumed. Hardlink entries keep their `hardlink` type and target.
 * Memory grows with the number of paths, not with content. Throws as `readLayer` does.
 */
export async function mergedListing(layers: readonly ByteInput[], options: ReadLayerOptions = {}): Promise<Entry[]> {
  let tree = new Map<string, Entry>();
  for (const layer of layers) {
    const added = new Set<string>();
    const opaqueDirs = new Set<string>();
    const whiteouts = new Set<string>();
    for await (const { entry } of readLayer(layer, { ...options, hash: false })) {
      const kind = classifyWhiteout(entry.path);
      if (kind.kind === 'whiteout') whiteouts.add(kind.target);
      else if (kind.kind === 'opaque') opaqueDirs.add(kind.dir);
      else if (kind.kind === 'none') {
        if (entry.type !== 'directory' && tree.get(entry.path)?.type === 'directory') {
          // A non-directory replaces a whole lower subtree; a directory over a directory merges.
          for (const path of tree.keys()) if (path !== entry.path && isWithin(path, entry.path) && !added.has(path)) tree.delete(path);
        }
        tree.set(entry.path, entry);
        added.add(entry.path);
      }
    }
    // Deletions hide only what came from below, wherever they stood in the layer: one set lookup per ancestor.
    const hidden = (path: string): boolean => {
      if (added.has(path)) return false;
      for (let p = path; ; p = parentOf(p)) {
        if (whiteouts.has(p) || (p !== path && opaqueDirs.has(p))) return true;
        if (p === ROOT) return false;
      }
    };
    if (opaqueDirs.size > 0 || whiteouts.size > 0) tree = new Map([...tree].filter(([path]) => !hidden(path)));
  }
  tree.delete(ROOT);
  return [...tree.values()].sort((a, b) => compareTarOrder(a.path, b.path));
}
