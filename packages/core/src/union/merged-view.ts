/**
 * MergedView: a stack of layers read as one tree, with overlayfs semantics. Lookup goes top-down; a
 * whiteout hides everything below it at that path; an opaque directory hides the lower contents of that
 * directory; a non-directory hides whatever is below it, and a directory hides a non-directory below it.
 *
 * Cost: resolving a path walks its components once; at each component only the layers that contributed a
 * directory to the parent are asked, each with one hash lookup in that layer's (cached) listing. Resolved
 * nodes and merged listings are cached, so a repeated lookup is one map hit whatever the stack's depth.
 * Changes to a layer (the writable one) must be reported through `invalidate`.
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

export class MergedView {
  /** Layers, top first. */
  readonly layers: readonly LayerTree[];
  readonly #nodes = new Map<string, MergedNode | null>();
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
    const node = this.#resolve(path, parent);
    this.#nodes.set(path, node ?? null);
    return node;
  }

  #resolve(path: string, parent: MergedNode): MergedNode | undefined {
    const name = baseName(path);
    let top: { layer: number; type: NodeType } | undefined;
    const dirs: number[] = [];
    for (const i of parent.dirLayers) {
      const node = this.layers[i]!.children(parent.path).get(name);
      if (node === undefined) continue;
      if (node.kind === 'whiteout') break;
      if (top === undefined) top = { layer: i, type: node.type };
      if (node.type !== 'directory') break; // a non-directory ends the merge, above or below a directory
      if (top.type !== 'directory') break;
      dirs.push(i);
      if (this.layers[i]!.isOpaque(path)) break;
    }
    if (top === undefined) return undefined;
    return { path, type: top.type, layer: top.layer, dirLayers: top.type === 'directory' ? dirs : [] };
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
    const seen = new Set<string>();
    const names: string[] = [];
    for (const i of node.dirLayers) {
      for (const [name, child] of this.layers[i]!.children(dir)) {
        if (seen.has(name)) continue;
        seen.add(name); // a whiteout here hides the name in every lower layer
        if (child.kind === 'entry') names.push(name);
      }
    }
    names.sort(compareNames);
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

  /** Forgets what was resolved at `path` (and beneath it, when it was a directory) and its parent's listing. */
  invalidate(path: string): void {
    const cached = this.#nodes.get(path);
    if (cached?.type === 'directory') {
      for (const key of this.#nodes.keys()) if (isWithin(key, path)) this.#nodes.delete(key);
      for (const key of this.#listings.keys()) if (isWithin(key, path)) this.#listings.delete(key);
    } else {
      this.#nodes.delete(path);
      this.#listings.delete(path);
    }
    this.#listings.delete(parentOf(path));
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
