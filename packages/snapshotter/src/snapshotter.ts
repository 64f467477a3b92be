/**
 * The snapshotter contract, with containerd's semantics and vocabulary.
 *
 * A snapshot is a directory tree that stacks on a parent. Snapshots come in three kinds:
 *
 * - **active**: a writable tree made by `prepare(key, parent)`. It is mounted (by the kernel, or opened as
 *   strata's copy-on-write view), changed, and then either committed or removed.
 * - **view**: a read-only tree made by `view(key, parent)`, for looking at a parent without changing it.
 *   It cannot be committed.
 * - **committed**: an immutable tree made by `commit(name, key)` from an active snapshot. Only committed
 *   snapshots can be parents.
 *
 * Keys and names share one namespace: an active or view snapshot is known by its key, a committed one by
 * its name, and no two snapshots have the same one. A key is released when its snapshot is committed or
 * removed, and can be used again. A snapshot with children cannot be removed (FAILED_PRECONDITION);
 * remove the children first.
 *
 * The lifecycle of a container's filesystem, and of a build step:
 *
 *   const mounts = await sn.prepare('step-3', 'sha256:…chain of step 2');  // an active snapshot
 *   mountAll(mounts, rootfs);                                               // or sn.open('step-3')
 *   … run the step, which writes into rootfs …
 *   unmount(rootfs);
 *   const layer = await sn.commit('sha256:…chain of step 3', 'step-3', { layer: { path: 'layer.tar.gz', compression: 'gzip' } });
 *
 * and of unpacking an image: for each layer, `prepare(tmpKey, parentChainID)`, apply the layer into the
 * mount (or its upper directory, with `applyLayer(…, { layout: 'overlay' })`), `commit(chainID, tmpKey)`.
 *
 * Every method is safe to call from several processes on one root: the metadata database serialises
 * changes, and directory work is staged and ordered against the database's commit so that a crash at any
 * instant leaves nothing `cleanup()` cannot repair.
 *
 * Errors: NOT_FOUND (no such key or name), ALREADY_EXISTS (the key or name is taken), FAILED_PRECONDITION
 * (wrong kind for the operation, children present, closed), INVALID_ARGUMENT (malformed keys, names,
 * labels, filters or field paths; a parent that is not committed), UNSUPPORTED (a kernel mount under the
 * userspace driver), and Node errno errors from the file system.
 */
import type { ApplyOptions, ApplyResult, ByteInput, LayerDescriptor, LayerTree, Mount, WritableLayer, WriteLayerOptions } from '@strata/core';

/** The three kinds of snapshot. */
export type Kind = 'active' | 'view' | 'committed';

/** What `stat` says of a snapshot. */
export interface Info {
  /** The key (active, view) or name (committed). */
  readonly name: string;
  readonly kind: Kind;
  /** The committed snapshot this one stacks on; undefined for a base. */
  readonly parent: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly created: Date;
  readonly updated: Date;
}

/** What `update` may change: labels, whole (`labels`) or one by one (`labels.<key>`). */
export interface InfoUpdate {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Present only to be refused: the parent and kind of a snapshot never change. */
  readonly parent?: string | undefined;
  readonly kind?: Kind;
}

/** Disk usage of a snapshot's own layer (not its parents'): what `du -s` of it says. */
export interface Usage {
  /** Bytes of allocated blocks. */
  readonly size: number;
  readonly inodes: number;
}

/** Options of `prepare`, `view` and `commit`. */
export interface SnapshotOptions {
  readonly labels?: Readonly<Record<string, string>>;
}

/** Where `commit` (and `diff`) writes the snapshot's change as a layer, and how. */
export interface LayerOutput extends WriteLayerOptions {
  /** A file path (written whole or not at all) for the layer tarball. */
  readonly path: string;
}

/** Options of `commit`. */
export interface CommitOptions extends SnapshotOptions {
  /**
   * Also write the snapshot's change as a layer (read from its upper directory, so it costs what the change
   * costs, not what the image costs): what `docker commit` and every build step need next. Written before
   * the commit is recorded: if writing fails, nothing is committed.
   */
  readonly layer?: LayerOutput;
}

/** The drivers a root can use. */
export type DriverName = 'overlay' | 'userspace' | 'native';

/** One problem `fsck` found, and whether `repair` fixed it. */
export interface FsckProblem {
  readonly kind: 'missing-directory' | 'orphan-directory' | 'stale-staging' | 'unfinished-removal' | 'missing-parent' | 'parent-not-committed' | 'children-index' | 'invalid-upper' | 'unknown-entry';
  /** The snapshot it concerns, when there is one. */
  readonly key?: string;
  /** The path it concerns, when there is one. */
  readonly path?: string;
  readonly detail: string;
  repaired: boolean;
}

/** What `fsck` found. */
export interface FsckReport {
  readonly snapshots: number;
  readonly problems: FsckProblem[];
  /** True when nothing is left unrepaired. */
  readonly ok: boolean;
}

/** containerd's snapshotter, with strata's additions (userspace views, layers at commit, fsck). */
export interface Snapshotter {
  /** The root directory. */
  readonly root: string;
  /** The driver in use (recorded in the root on first use). */
  readonly driver: DriverName;

  /**
   * Makes an active snapshot `key` on the committed snapshot `parent` (none: an empty base), and returns
   * the mounts that give its tree. Throws ALREADY_EXISTS, NOT_FOUND (parent), INVALID_ARGUMENT (a parent
   * that is not committed, a malformed key or labels).
   */
  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;

  /** Like `prepare`, for a read-only view of `parent`: its mounts are read-only, and it cannot be committed. */
  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;

  /** The mounts of an active or view snapshot (again). Throws NOT_FOUND, FAILED_PRECONDITION (committed). */
  mounts(key: string): Promise<Mount[]>;

  /**
   * Commits the active snapshot `key` as `name`: `key` is released, `name` is immutable from now on, and its
   * usage is frozen. With `layer`, also writes its change as a layer and returns its descriptor. Throws
   * NOT_FOUND, ALREADY_EXISTS (name), FAILED_PRECONDITION (not active).
   */
  commit(name: string, key: string, options?: CommitOptions): Promise<LayerDescriptor | undefined>;

  /** Removes a snapshot of any kind, and its directory. Throws NOT_FOUND, FAILED_PRECONDITION (children). */
  remove(key: string): Promise<void>;

  /** What the snapshot is. Throws NOT_FOUND. */
  stat(key: string): Promise<Info>;

  /**
   * Changes labels: with no field paths (or `labels`) the labels become `info.labels`; with `labels.<key>`
   * that one label is set from `info.labels` or, absent there, removed. Refreshes `updated`. Throws
   * NOT_FOUND, INVALID_ARGUMENT (any other field path, such as `parent`).
   */
  update(info: InfoUpdate, fieldpaths?: readonly string[]): Promise<Info>;

  /**
   * Disk usage of the snapshot's own layer: frozen at commit for committed snapshots (free to ask), measured
   * now for the others (a walk of their upper directory, as `du -s`).
   */
  usage(key: string): Promise<Usage>;

  /**
   * Calls `fn` for every snapshot matching any of `filters` (containerd's syntax: `kind==active`,
   * `name==x`, `parent!=""`, `labels."a.b"==v`, `labels.k`; `,` joins conditions that must all hold).
   * The snapshots are read before the first call, so `fn` may change the snapshotter. Throws
   * INVALID_ARGUMENT for a malformed filter.
   */
  walk(fn: (info: Info) => void | Promise<void>, ...filters: string[]): Promise<void>;

  /** Removes what interrupted operations left behind (staging directories, unrecorded snapshot directories). */
  cleanup(): Promise<void>;

  /** Closes the database; idempotent. Other calls then throw FAILED_PRECONDITION. */
  close(): Promise<void>;

  /**
   * Mounts a snapshot at `target` with the kernel (its `mounts()`). Throws UNSUPPORTED under the userspace
   * driver (use `open`), Node errno errors from the kernel.
   */
  mount(key: string, target: string): Promise<void>;

  /** Unmounts `target`. */
  unmount(target: string): Promise<void>;

  /**
   * strata's userspace view of a snapshot, under any driver and without privileges, with an fs/promises
   * API: an active snapshot is writable (its changes land in the same upper directory a kernel mount would
   * use), a view or committed one read-only (changes fail with EROFS, as through a read-only mount).
   */
  open(key: string): Promise<WritableLayer>;

  /** The layers of a snapshot's chain, bottom first, its own last: what `open` stacks. */
  layers(key: string): Promise<LayerTree[]>;

  /** Writes the change of an active snapshot (or a committed one, against its parent) as a layer. */
  diff(key: string, output: LayerOutput): Promise<LayerDescriptor>;

  /**
   * Applies a layer tarball into the active snapshot `key`, in the form its driver keeps trees (into the
   * upper directory in overlay layout, or into the full copy): how images are unpacked, one snapshot per
   * layer. Without root, device nodes are skipped unless `options.devices` says otherwise (the caller cannot
   * make them; containerd skips them in a user namespace too, and a container's runtime gives it its `/dev`),
   * and owners other than root are kept in `user.rootlesscontainers` records unless `options.owners` says
   * otherwise (as `umoci unpack --rootless` keeps them; `diff` through the caller's id map gives them back).
   * Throws FAILED_PRECONDITION (not active) and what `applyLayer` throws.
   */
  applyLayer(key: string, layer: ByteInput, options?: ApplyOptions): Promise<ApplyResult>;

  /**
   * Checks the root against its database: records without directories, directories without records,
   * missing parents, the children index, active snapshots whose upper is not a valid overlay upper, and
   * leftovers of interrupted operations. With `repair`, fixes what can be fixed safely.
   */
  fsck(options?: { repair?: boolean }): Promise<FsckReport>;
}
