/**
 * The trees RUN's bind mounts show. BuildKit mounts one snapshot of the context (or of a stage) into every
 * step that binds it; strata makes each tree once per build and mounts it read-only into every step that
 * binds the same selection (the same checksum: names, contents and metadata), instead of copying it for each
 * step. A step that can write to its mount (`rw`, whose writes are discarded, or `--security=insecure`,
 * which may remount it) gets a private copy in its bundle. The shared trees go when the build ends.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTree } from '@strata/core';

/** One build's shared bind trees: made on first use, removed by `dispose`. */
export class BindTrees {
  /** Where the shared trees are (mode 0700), made at the first one. */
  #dir: string | undefined;
  /** The tree of each selection by its checksum, made or being made. */
  readonly #trees = new Map<string, Promise<string>>();
  #made = 0;

  /** The shared tree of the selection whose checksum is `sum`, written by `write` into an empty directory the first time. */
  shared(sum: string, write: (dir: string) => Promise<void>): Promise<string> {
    let tree = this.#trees.get(sum);
    if (tree === undefined) {
      tree = this.#make(write);
      this.#trees.set(sum, tree);
      // A tree that failed is not kept: the step fails with its error, and nothing half-written is shared.
      tree.catch(() => this.#trees.delete(sum));
    }
    return tree;
  }

  async #make(write: (dir: string) => Promise<void>): Promise<string> {
    this.#dir ??= mkdtempSync(join(tmpdir(), 'strata-binds-'));
    const tree = join(this.#dir, String(this.#made++));
    mkdirSync(tree);
    try {
      await write(tree);
    } catch (error) {
      removeTree(tree);
      throw error;
    }
    return tree;
  }

  /** Removes the shared trees (once no step runs). */
  dispose(): void {
    if (this.#dir !== undefined) removeTree(this.#dir);
    this.#dir = undefined;
    this.#trees.clear();
  }
}
