/**
 * The three ways to turn the one on-disk layout into trees:
 * - `overlay`: kernel overlay mounts (lowerdir top first, upperdir, workdir; a base or a one-parent view is
 *   a bind mount), as containerd's overlay snapshotter makes them;
 * - `userspace`: the same directories and the same mount specs, but trees are opened as strata's
 *   `MergedView` and `WritableLayer`: no privileges, no kernel mount; a root moves between the two freely;
 * - `native`: each snapshot a full copy of its parent (reflinked where the file system can), for file
 *   systems where neither works; mounts are bind mounts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HostLayer, MergedView, WritableLayer, diffTrees, diffUpper, type ApplyLayout, type ContentChange, type LayerTree, type Mount, type OverlayXattrNamespace } from '@strata/core';
import type { DriverName, Kind } from './snapshotter.js';

/** A snapshot's own directories. */
export interface OwnDirs {
  readonly fs: string;
  readonly work: string;
}

/** What differs between drivers; everything else (records, staging, removal) is shared. */
export interface Driver {
  readonly name: DriverName;
  /** Whether `mount` performs kernel mounts. */
  readonly mountsWithKernel: boolean;
  /** Fills the staged directory `dir` of a new snapshot of `kind` on the parent whose tree is at `parentFs`. */
  stage(dir: string, kind: Kind, parentFs: string | undefined): void;
  /** The mounts of an active or view snapshot; `parents` are the fs directories of its chain, top first. */
  mounts(own: OwnDirs, kind: Kind, parents: readonly string[]): Mount[];
  /**
   * The read-only layers that make the tree of a snapshot of `kind` whose own directory is `own` and whose
   * parents' are `parents` (top first), bottom first. For an active snapshot: what lies under its upper.
   */
  layers(kind: Kind, own: string, parents: readonly string[]): LayerTree[];
  /** A snapshot as a copy-on-write tree: writable when active, read-only (EROFS) otherwise. */
  open(kind: Kind, own: OwnDirs, parents: readonly string[]): WritableLayer;
  /** The change an active (or committed) snapshot makes to its parents. */
  changes(own: OwnDirs, parents: readonly string[]): Iterable<ContentChange> | AsyncIterable<ContentChange>;
  /** How a layer is applied into an active snapshot's own directory: deletions recorded (overlay) or done (native). */
  readonly applyLayout: ApplyLayout;
  /** Overlay markers' namespace, for applying in overlay layout. */
  readonly namespace: OverlayXattrNamespace;
}

/** containerd's overlay option set: no inode index (lowers are shared), nothing the diff cannot read back. */
export function overlayOptions(namespace: OverlayXattrNamespace): string[] {
  return namespace === 'user' ? ['index=off', 'userxattr', 'metacopy=off'] : ['index=off', 'redirect_dir=off', 'metacopy=off'];
}

function makeFs(dir: string): void {
  mkdirSync(join(dir, 'fs'), { mode: 0o755 });
  chmodSync(join(dir, 'fs'), 0o755); // the mounted root is 0755 whatever the umask
}

/** The layout-sharing drivers: overlay (kernel mounts) and userspace (strata's views). */
class LayeredDriver implements Driver {
  readonly applyLayout = 'overlay';

  constructor(
    readonly name: 'overlay' | 'userspace',
    readonly namespace: OverlayXattrNamespace,
  ) {}

  get mountsWithKernel(): boolean {
    return this.name === 'overlay';
  }

  stage(dir: string, kind: Kind): void {
    makeFs(dir);
    if (kind === 'active') mkdirSync(join(dir, 'work'), { mode: 0o711 });
  }

  mounts(own: OwnDirs, kind: Kind, parents: readonly string[]): Mount[] {
    if (parents.length === 0) return [{ type: 'bind', source: own.fs, options: [kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
    if (kind === 'view' && parents.length === 1) return [{ type: 'bind', source: parents[0]!, options: ['ro', 'rbind'] }];
    const options = [...overlayOptions(this.namespace)];
    if (kind === 'active') options.push(`workdir=${own.work}`, `upperdir=${own.fs}`);
    options.push(`lowerdir=${parents.join(':')}`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  layers(kind: Kind, own: string, parents: readonly string[]): LayerTree[] {
    const chain = kind === 'committed' ? [own, ...parents] : parents;
    return [...chain].reverse().map((fs) => new HostLayer(fs, { whiteouts: 'overlay', xattrNamespace: this.namespace }));
  }

  open(kind: Kind, own: OwnDirs, parents: readonly string[]): WritableLayer {
    // Its own directory is the upper in every case: an active one's changes, a view's nothing, a committed one's layer.
    return new WritableLayer(this.layers('active', own.fs, parents), own.fs, { xattrNamespace: this.namespace, readOnly: kind !== 'active' });
  }

  changes(own: OwnDirs, parents: readonly string[]): Iterable<ContentChange> {
    return diffUpper(this.layers('active', own.fs, parents), own.fs, { xattrNamespace: this.namespace });
  }
}

/** Full copies: every snapshot holds its whole tree. */
class NativeDriver implements Driver {
  readonly name = 'native';
  readonly mountsWithKernel = true;
  readonly applyLayout = 'plain';

  constructor(readonly namespace: OverlayXattrNamespace) {}

  stage(dir: string, _kind: Kind, parentFs: string | undefined): void {
    if (parentFs === undefined) return makeFs(dir);
    // GNU cp: owners, modes, times, xattrs and hardlinks kept; extents shared where the file system can.
    execFileSync('cp', ['-a', '--reflink=auto', '--', parentFs, join(dir, 'fs')], { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  mounts(own: OwnDirs, kind: Kind): Mount[] {
    return [{ type: 'bind', source: own.fs, options: [kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
  }

  layers(kind: Kind, own: string): LayerTree[] {
    return kind === 'active' ? [] : [new HostLayer(own)];
  }

  open(kind: Kind, own: OwnDirs): WritableLayer {
    return new WritableLayer([], own.fs, { readOnly: kind !== 'active' });
  }

  changes(own: OwnDirs, parents: readonly string[]): AsyncIterable<ContentChange> {
    const base = parents.length === 0 ? [] : [new HostLayer(parents[0]!)];
    return diffTrees(new MergedView(base), new MergedView([new HostLayer(own.fs)]));
  }
}

/** The driver called `name`, for uppers in `namespace`. */
export function driverFor(name: DriverName, namespace: OverlayXattrNamespace): Driver {
  return name === 'native' ? new NativeDriver(namespace) : new LayeredDriver(name, namespace);
}
