/**
 * How a layer's deletions land in the target, as two strategies:
 * - `plain`: a whiteout deletes what it names; an opaque marker empties its directory of what came from
 *   below. The target ends up as the merged tree.
 * - `overlay`: the same, and each deletion is recorded the way overlayfs reads an upper directory (a char
 *   0/0 device, the opaque xattr), so the target can be mounted as a layer of its own.
 *
 * Both follow one rule within a layer: a deletion hides only what is below, never an entry of the same
 * layer, wherever it stands in the archive.
 */
import { LayerFormatError, UnsupportedError } from '../errors.js';
import { childPath, isWithin, parentOf, ROOT } from '../path.js';
import { quote } from '../quote.js';
import { opaqueXattr, OPAQUE_VALUE, WHITEOUT_DEVICE, type OverlayXattrNamespace } from '../whiteout.js';
import type { ApplyState } from './state.js';
import type { ApplyTarget, HostKind } from './target.js';

/** The deletion side of an apply. Paths are resolved paths. */
export interface Deletions {
  /** A `.wh.<name>` entry for `path`. */
  whiteout(path: string): void;
  /** A `.wh..wh..opq` entry for directory `dir`. */
  opaque(dir: string): void;
  /** The layer made directory `dir` where something was deleted: nothing below may show through it. */
  recreated(dir: string): void;
  /** A directory is needed at `path`, where `kind` stands: true when this strategy cleared the way. */
  clearForDirectory(path: string, kind: HostKind): boolean;
  /** The layer's entry at `path` is left out (see `devices: 'skip'`): nothing below may show there either. */
  absent(path: string): void;
}

/** Deletions executed: the target becomes the merged tree. */
export class PlainDeletions implements Deletions {
  constructor(
    protected readonly target: ApplyTarget,
    protected readonly state: ApplyState,
  ) {}

  clearForDirectory(_path: string, _kind: HostKind): boolean {
    return false; // in a plain target a char 0/0 is a real device, not a deletion
  }

  whiteout(path: string): void {
    this.state.whitedOut.add(path);
    if (this.#hidesOwnEntry(path)) return;
    const parent = this.target.kind(parentOf(path));
    if (parent !== 'directory') return; // nothing stands below a missing or non-directory parent
    const kind = this.target.kind(path);
    if (kind !== undefined) this.target.remove(path, kind);
  }

  /**
   * A whiteout of a path this layer itself put in place does not remove that entry; when it is a directory,
   * the whiteout still hides everything below it, so it becomes opaque. True when that was the case.
   */
  #hidesOwnEntry(path: string): boolean {
    if (!this.state.isTouched(path)) return false;
    if (this.target.kind(path) === 'directory') this.opaque(path);
    return true;
  }

  opaque(dir: string): void {
    this.target.ensureDir(parentOf(dir), dir, (p, kind) => this.clearForDirectory(p, kind));
    const kind = this.target.kind(dir);
    if (kind !== undefined && kind !== 'directory') {
      if (this.state.isTouched(dir)) throw new LayerFormatError(`opaque marker inside a non-directory: ${quote(dir)}`, { path: dir });
      this.target.remove(dir, kind);
    }
    if (kind !== 'directory') this.target.mkdir(dir, 0o755);
    else this.#prune(dir);
    this.state.touch(dir);
    this.markOpaque(dir);
  }

  recreated(dir: string): void {
    this.markOpaque(dir);
  }

  absent(_path: string): void {
    // What stood at the path was removed when the entry replaced it: the target has nothing there.
  }

  /** Records that `dir` hides what is below it; a plain target has nothing to record. */
  protected markOpaque(_dir: string): void {}

  /** Empties `dir` of everything this layer did not put there, recursively. */
  #prune(dir: string): void {
    for (const name of this.target.list(dir)) {
      const path = childPath(dir, name);
      const kind = this.target.kind(path);
      if (kind === undefined) continue;
      if (!this.state.isTouched(path)) this.target.remove(path, kind);
      else if (kind === 'directory') this.#prune(path);
    }
  }
}

/** Deletions executed and recorded as overlayfs reads them. */
export class OverlayDeletions extends PlainDeletions {
  readonly #opaqueName: string;
  /** Directories this layer made opaque: whiteouts beneath them hide nothing and are not written. */
  readonly #opaqued = new Set<string>();
  /** Whiteout devices this layer wrote, removed again when an opaque ancestor makes them redundant. */
  readonly #devices = new Set<string>();

  constructor(target: ApplyTarget, state: ApplyState, namespace: OverlayXattrNamespace) {
    super(target, state);
    this.#opaqueName = opaqueXattr(namespace);
  }

  /** Forgets the devices below a removed directory (they went with it). */
  removed(path: string, wasDirectory: boolean): void {
    this.#devices.delete(path);
    if (wasDirectory) for (const p of this.#devices) if (isWithin(p, path)) this.#devices.delete(p);
  }

  /** A whiteout device where a directory is needed: the directory replaces it, opaque (nothing below shows). */
  override clearForDirectory(path: string, kind: HostKind): boolean {
    if (kind !== 'whiteout') return false;
    this.target.remove(path, kind);
    this.target.mkdir(path, 0o755);
    this.markOpaque(path);
    return true;
  }

  override whiteout(path: string): void {
    if (this.state.isTouched(path)) {
      super.whiteout(path);
      return;
    }
    this.state.whitedOut.add(path);
    const parent = this.target.kind(parentOf(path));
    if (parent === undefined) this.target.ensureDir(parentOf(path), path, (p, kind) => this.clearForDirectory(p, kind));
    else if (parent !== 'directory') return;
    const kind = this.target.kind(path);
    if (kind !== undefined) this.target.remove(path, kind);
    if (!this.#placeWhiteout(path)) return;
    // A later entry at this path replaces the device; a later whiteout must not remove it.
    this.state.touch(path);
  }

  /** A whiteout device in the entry's place, so what the layers below have there stays hidden. */
  override absent(path: string): void {
    this.#placeWhiteout(path);
  }

  /** A whiteout device at `path`, unless an opaque directory of this layer hides what is below: true when made. */
  #placeWhiteout(path: string): boolean {
    if (this.#underOpaque(path)) return false;
    this.target.mknod(path, WHITEOUT_DEVICE.typeBits, WHITEOUT_DEVICE.perm, WHITEOUT_DEVICE.major, WHITEOUT_DEVICE.minor);
    this.#devices.add(path);
    return true;
  }

  #underOpaque(path: string): boolean {
    for (let p = parentOf(path); ; p = parentOf(p)) {
      if (this.#opaqued.has(p)) return true;
      if (p === ROOT) return false;
    }
  }

  /**
   * Marks `dir` opaque and drops the whiteouts this layer wrote beneath it: the kernel lists whiteouts
   * inside a non-merged directory (and then cannot find them), and never writes that combination itself.
   */
  protected override markOpaque(dir: string): void {
    try {
      this.target.setXattr(dir, this.#opaqueName, OPAQUE_VALUE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
      throw new UnsupportedError(`${this.#opaqueName} cannot be set here (only root may set trusted.* xattrs): apply as root, or with xattrNamespace 'user'`, { path: dir, cause: error });
    }
    this.#opaqued.add(dir);
    for (const path of this.#devices) {
      if (path === dir || !isWithin(path, dir)) continue;
      this.#devices.delete(path);
      if (this.target.kind(path) === 'whiteout') this.target.remove(path, 'whiteout');
    }
  }
}
