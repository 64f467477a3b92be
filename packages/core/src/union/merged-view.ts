/**
 * MergedView: a stack of layers read as one tree, with overlayfs semantics. Lookup goes top-down; a
 * whiteout hides everything below it at that path; an opaque directory hides the lower contents of that
 * directory; a non-directory hides whatever is below it, and a directory hides a non-directory below it.
 *
 * Cost: each directory is merged once, on first use: one listing per contributing layer, folded into one
 * map from name to the layer that shows it. After that, resolving a path is one hash lookup per component
 * however many layers there are, and resolved nodes are cached. Changes to a layer (the writable one) are
 * reported through `invalidate`, which updates just the entry that changed.
 */
import { fsError } from '../errors.js';
import { baseName, childPath, compareNames, isWithin, parentOf, ROOT } from '../path.js';
import type { LayerTree, NodeStat, NodeType } from '../tree/layer-tree.js';

/** A path resolved in the merged view. */
export interface MergedNode {
  readonly path: string;
  readonly type: NodeType;
  /** Index (0 = top) of the layer whose entry is visible at this path. */
  readonly layer: number;
  /** For directories: the layers (top first) whose directory here is merged, stopping at an opaque one. */
  readonly dirLayers: readonly number[];
}

/** What a merged directory shows at one name. */
interface VisibleChild {
  readonly layer: number;
  readonly type: NodeType;
}

export class MergedView {
  /** Layers, top first. */
  readonly layers: readonly LayerTree[];
  readonly #nodes = new Map<string, MergedNode | null>();
  /** Merged directories: name → the layer that shows it (whiteouts and hidden names left out). */
  readonly #children = new Map<string, Map<string, VisibleChild>>();
  readonly #listings = new Map<string, readonly string[]>();

  /** `lowers` bottom first (as overlayfs `lowerdir` lists them reversed), `upper` on top of them. */
  constructor(lowers: readonly LayerTree[], upper?: LayerTree) {
    this.layers = [...(upper ? [upper] : []), ...[...lowers].reverse()];
  }

  /** The node at a clean path, not following a final symlink (intermediate components must be directories: no symlink resolution here). */
  lookup(path: string): MergedNode | undefined {
    const cached = this.#nodes.get(path);
    if (cached !== undefined) return cached ?? undefined;
    if (path === ROOT) {
      const root = { path, type: 'directory' as const, layer: 0, dirLayers: this.#dirLayers(ROOT, this.layers.map((_, i) => i)) };
      this.#nodes.set(path, root);
      return root;
    }
    const parent = this.lookup(parentOf(path));
    // Absence is cached only beneath an existing directory, so creating a directory never leaves stale
    // negative entries below it: invalidating a non-directory path touches one key.
    if (!parent || parent.type !== 'directory') return undefined;
    const child = this.#childrenOf(parent).get(baseName(path));
    const node = child && {
      path,
      type: child.type,
      layer: child.layer,
      dirLayers: child.type === 'directory' ? this.#mergedBelow(parent, path, child.layer) : [],
    };
    this.#nodes.set(path, node ?? null);
    return node;
  }

  /** The merged children of a directory, built once from its layers' listings. */
  #childrenOf(dir: MergedNode): Map<string, VisibleChild> {
    let map = this.#children.get(dir.path);
    if (map) return map;
    map = new Map();
    const hidden = new Set<string>();
    for (const i of dir.dirLayers) {
      for (const [name, node] of this.layers[i]!.children(dir.path)) {
        if (map.has(name) || hidden.has(name)) continue;
        if (node.kind === 'whiteout') hidden.add(name);
        else map.set(name, { layer: i, type: node.type });
      }
    }
    this.#children.set(dir.path, map);
    return map;
  }

  /**
   * Whether layers from `fromLayer` down show an entry at `path` (a whiteout or nothing there: false). With
   * `fromLayer` 1 over a writable upper: whether deleting `path` needs a whiteout.
   */
  shownFrom(path: string, fromLayer: number): boolean {
    if (path === ROOT) return true;
    const parent = this.lookup(parentOf(path));
    return parent?.type === 'directory' && this.#visible(parent, baseName(path), fromLayer) !== undefined;
  }

  /** What one name shows in a merged directory, scanning its layers top-down from `fromLayer`. */
  #visible(dir: MergedNode, name: string, fromLayer = 0): VisibleChild | undefined {
    for (const i of dir.dirLayers) {
      if (i < fromLayer) continue;
      const node = this.layers[i]!.children(dir.path).get(name);
      if (node === undefined) continue;
      return node.kind === 'whiteout' ? undefined : { layer: i, type: node.type };
    }
    return undefined;
  }

  /** The layers whose directory at `path` merges, from the visible one down to a non-directory, whiteout or opaque one. */
  #mergedBelow(parent: MergedNode, path: string, top: number): number[] {
    const name = baseName(path);
    const out: number[] = [];
    for (const i of parent.dirLayers) {
      if (i < top) continue;
      const node = this.layers[i]!.children(parent.path).get(name);
      if (node === undefined) continue;
      if (node.kind === 'whiteout' || node.type !== 'directory') break;
      out.push(i);
      if (this.layers[i]!.isOpaque(path)) break;
    }
    return out;
  }

  #dirLayers(path: string, candidates: number[]): number[] {
    const out: number[] = [];
    for (const i of candidates) {
      out.push(i);
      if (this.layers[i]!.isOpaque(path)) break;
    }
    return out;
  }

  /** Metadata of the visible entry at `path` (from its layer), or undefined. */
  stat(path: string): NodeStat | undefined {
    const node = this.lookup(path);
    return node ? this.layers[node.layer]!.stat(path) : undefined;
  }

  /** Names in directory `dir`, merged over its layers, sorted byte-wise. Throws ENOENT / ENOTDIR. */
  readdir(dir: string): readonly string[] {
    const cached = this.#listings.get(dir);
    if (cached) return cached;
    const node = this.lookup(dir);
    if (!node) throw fsError('ENOENT', 'scandir', dir);
    if (node.type !== 'directory') throw fsError('ENOTDIR', 'scandir', dir);
    const names = [...this.#childrenOf(node).keys()].sort(compareNames);
    this.#listings.set(dir, names);
    return names;
  }

  /** Target of the visible symlink at `path`. Throws ENOENT / EINVAL. */
  readlink(path: string): string {
    const node = this.lookup(path);
    if (!node) throw fsError('ENOENT', 'readlink', path);
    if (node.type !== 'symlink') throw fsError('EINVAL', 'readlink', path);
    return this.layers[node.layer]!.readlink(path);
  }

  /** Content of the visible regular file at `path`. Throws ENOENT / EISDIR. */
  read(path: string): AsyncIterable<Uint8Array> {
    const node = this.lookup(path);
    if (!node) throw fsError('ENOENT', 'open', path);
    if (node.type === 'directory') throw fsError('EISDIR', 'read', path);
    return this.layers[node.layer]!.read(path);
  }

  /**
   * Reports that `path` changed in some layer: what was resolved there (and beneath it, when it was a
   * directory) is forgotten, and its parent's merged entry for it is recomputed from the layers.
   */
  invalidate(path: string): void {
    const cached = this.#nodes.get(path);
    if (cached?.type === 'directory' || path === ROOT) {
      for (const map of [this.#nodes, this.#children, this.#listings]) for (const key of map.keys()) if (isWithin(key, path)) map.delete(key);
    } else {
      this.#nodes.delete(path);
      this.#children.delete(path);
      this.#listings.delete(path);
    }
    if (path === ROOT) return;
    const parentPath = parentOf(path);
    this.#listings.delete(parentPath);
    const parent = this.#nodes.get(parentPath);
    const siblings = this.#children.get(parentPath);
    if (!parent || !siblings) return;
    const child = this.#visible(parent, baseName(path));
    if (child) siblings.set(baseName(path), child);
    else siblings.delete(baseName(path));
  }

  /** Every visible path below `dir` in tar order (parents first), with its node. */
  *walk(dir = ROOT): Generator<MergedNode> {
    for (const name of this.readdir(dir)) {
      const node = this.lookup(childPath(dir, name))!;
      yield node;
      if (node.type === 'directory') yield* this.walk(node.path);
    }
  }
}
