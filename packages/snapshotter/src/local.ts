/**
 * The snapshotter over one local root: records in the metadata database, trees in the layout, the driver's
 * mounts and views. Every change is one database transaction; directory work is staged before it or done
 * after it, in the order that keeps a crash repairable:
 * - create: the snapshot is staged (`new-…`) and moved to its numbered place inside the transaction that
 *   records it, so it either exists with its record or is a leftover `cleanup` removes;
 * - remove: the record goes first, then the directory, so a crash leaves an unrecorded directory;
 * - commit: only the record changes (the directory keeps its number).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  applyLayer,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnsupportedError,
  diskUsage,
  mountAll,
  quote,
  unmount,
  walkHostDirectory,
  writeChanges,
  type ApplyOptions,
  type ApplyResult,
  type ByteInput,
  type LayerDescriptor,
  type LayerTree,
  type Mount,
  type WritableLayer,
} from '@strata/core';
import { driverFor, type Driver, type OwnDirs } from './drivers.js';
import { matchesAny, parseFilter } from './filters.js';
import { Layout } from './layout.js';
import { MetadataStore, type RootSettings, type SnapshotRecord } from './metadata.js';
import { checkKey, checkLabels, updateLabels } from './names.js';
import type { CommitOptions, DriverName, FsckProblem, FsckReport, Info, InfoUpdate, Kind, LayerOutput, Snapshotter, SnapshotOptions, Usage } from './snapshotter.js';

function infoOf(name: string, record: SnapshotRecord): Info {
  return {
    name,
    kind: record.kind,
    parent: record.parent,
    labels: { ...record.labels },
    created: new Date(record.created),
    updated: new Date(record.updated),
  };
}

/** The drivers that share the layout: a root may move between them. */
const LAYERED = new Set<DriverName>(['overlay', 'userspace']);

export class LocalSnapshotter implements Snapshotter {
  readonly root: string;
  readonly driver: DriverName;
  readonly #layout: Layout;
  readonly #meta: MetadataStore;
  readonly #impl: Driver;
  readonly #settings: RootSettings;
  #closed = false;

  constructor(root: string, meta: MetadataStore, settings: RootSettings, driver: DriverName) {
    this.root = root;
    this.#layout = new Layout(root);
    this.#meta = meta;
    this.#settings = settings;
    this.driver = driver;
    this.#impl = driverFor(driver, settings.xattrNamespace);
  }

  // ---- reading records ------------------------------------------------------------------------

  #live(): void {
    if (this.#closed) throw new FailedPreconditionError('the snapshotter is closed');
  }

  #record(key: string): SnapshotRecord {
    const record = this.#meta.snapshots.get(key);
    if (record === undefined) throw new NotFoundError(`snapshot ${quote(key)} does not exist`, { path: key });
    return record;
  }

  #own(record: SnapshotRecord): OwnDirs {
    return { fs: this.#layout.fs(record.id), work: this.#layout.work(record.id) };
  }

  /** The fs directories of `parent` and its ancestors, top first. */
  #chain(parent: string | undefined): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    for (let key = parent; key !== undefined; ) {
      if (seen.has(key)) throw new FailedPreconditionError(`snapshot ${quote(key)} is its own ancestor`);
      seen.add(key);
      const record = this.#record(key);
      out.push(this.#layout.fs(record.id));
      key = record.parent;
    }
    return out;
  }

  // ---- the contract ---------------------------------------------------------------------------

  prepare(key: string, parent?: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.#create('active', key, parent, options);
  }

  view(key: string, parent?: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.#create('view', key, parent, options);
  }

  async #create(kind: Kind, key: string, parent: string | undefined, options: SnapshotOptions): Promise<Mount[]> {
    this.#live();
    checkKey(key);
    if (parent !== undefined && parent !== '') checkKey(parent, 'parent');
    else parent = undefined;
    const labels = checkLabels(options.labels);
    this.#meta.refresh();
    if (this.#meta.snapshots.get(key) !== undefined) throw new AlreadyExistsError(`snapshot ${quote(key)} already exists`, { path: key });
    const parentRecord = parent === undefined ? undefined : this.#record(parent);
    if (parentRecord !== undefined && parentRecord.kind !== 'committed') {
      throw new InvalidArgumentError(`parent ${quote(parent!)} is not a committed snapshot (it is ${parentRecord.kind})`, { path: parent! });
    }
    const parents = this.#chain(parent);
    const staging = this.#layout.stage();
    let record: SnapshotRecord;
    try {
      this.#impl.stage(staging, kind, parents[0]);
      record = this.#meta.transaction(() => {
        if (this.#meta.snapshots.get(key) !== undefined) throw new AlreadyExistsError(`snapshot ${quote(key)} already exists`, { path: key });
        if (parent !== undefined) {
          const now = this.#meta.snapshots.get(parent);
          if (now === undefined || now.id !== parentRecord!.id) throw new FailedPreconditionError(`parent ${quote(parent)} changed while ${quote(key)} was made`, { path: key });
        }
        const time = Date.now();
        const made: SnapshotRecord = { id: this.#meta.nextId(), kind, ...(parent !== undefined ? { parent } : {}), labels, created: time, updated: time };
        this.#meta.snapshots.put(key, made);
        if (parent !== undefined) this.#meta.addChild(parent, key);
        this.#layout.publish(staging, made.id); // inside: the directory exists exactly when the record does
        return made;
      });
    } catch (error) {
      this.#layout.discard(staging);
      throw error;
    }
    return this.#impl.mounts(this.#own(record), kind, parents);
  }

  async mounts(key: string): Promise<Mount[]> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    if (record.kind === 'committed') throw new FailedPreconditionError(`snapshot ${quote(key)} is committed: make a view of it to mount it`, { path: key });
    return this.#impl.mounts(this.#own(record), record.kind, this.#chain(record.parent));
  }

  async commit(name: string, key: string, options: CommitOptions = {}): Promise<LayerDescriptor | undefined> {
    this.#live();
    checkKey(name, 'name');
    checkKey(key);
    const labels = checkLabels(options.labels);
    this.#meta.refresh();
    const record = this.#record(key);
    if (record.kind !== 'active') throw new FailedPreconditionError(`snapshot ${quote(key)} is ${record.kind}, not active: only active snapshots can be committed`, { path: key });
    if (this.#meta.snapshots.get(name) !== undefined) throw new AlreadyExistsError(`snapshot ${quote(name)} already exists`, { path: name });
    const layer = options.layer === undefined ? undefined : await this.#writeLayer(record, options.layer);
    const usage = diskUsage(this.#layout.fs(record.id));
    this.#meta.transaction(() => {
      const now = this.#meta.snapshots.get(key);
      if (now === undefined || now.id !== record.id || now.kind !== 'active') throw new FailedPreconditionError(`snapshot ${quote(key)} changed while it was committed`, { path: key });
      if (this.#meta.snapshots.get(name) !== undefined) throw new AlreadyExistsError(`snapshot ${quote(name)} already exists`, { path: name });
      const time = Date.now();
      this.#meta.snapshots.remove(key);
      this.#meta.snapshots.put(name, {
        id: record.id,
        kind: 'committed',
        ...(record.parent !== undefined ? { parent: record.parent } : {}),
        labels,
        created: time,
        updated: time,
        size: usage.size,
        inodes: usage.inodes,
      });
      if (record.parent !== undefined) {
        this.#meta.removeChild(record.parent, key);
        this.#meta.addChild(record.parent, name);
      }
    });
    return layer;
  }

  async #writeLayer(record: SnapshotRecord, output: LayerOutput): Promise<LayerDescriptor> {
    const { path, ...options } = output;
    const parents = this.#chain(record.parent);
    return writeChanges(this.#impl.changes(this.#own(record), parents), path, options);
  }

  async diff(key: string, output: LayerOutput): Promise<LayerDescriptor> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    if (record.kind === 'view') throw new FailedPreconditionError(`snapshot ${quote(key)} is a view: it has no change`, { path: key });
    return this.#writeLayer(record, output);
  }

  async applyLayer(key: string, layer: ByteInput, options: ApplyOptions = {}): Promise<ApplyResult> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    if (record.kind !== 'active') throw new FailedPreconditionError(`snapshot ${quote(key)} is ${record.kind}: layers are applied into active snapshots`, { path: key });
    const layout = this.#impl.applyLayout;
    // In overlay layout the parents are the lowers: directories the layer implies are copied up from them.
    const lowers = layout === 'overlay' ? this.#impl.layers('active', this.#layout.fs(record.id), this.#chain(record.parent)) : undefined;
    // Without root, what only root can do is left to the peers' rootless ways: devices skipped, and owners
    // other than the caller's kept in owner records (umoci's), which a commit reads back.
    const asRoot = process.geteuid?.() === 0;
    const devices = options.devices ?? (asRoot ? 'create' : 'skip');
    const owners = options.owners ?? (asRoot ? 'apply' : 'xattr');
    return applyLayer(layer, this.#layout.fs(record.id), { ...options, layout, devices, owners, xattrNamespace: this.#impl.namespace, ...(lowers ? { lowers } : {}) });
  }

  async remove(key: string): Promise<void> {
    this.#live();
    checkKey(key);
    const record = this.#meta.transaction(() => {
      const found = this.#record(key);
      const children = this.#meta.children(key);
      if (children.length > 0) {
        throw new FailedPreconditionError(`cannot remove snapshot ${quote(key)}: it has ${children.length} child snapshot(s), such as ${quote(children[0]!)}`, { path: key });
      }
      this.#meta.snapshots.remove(key);
      if (found.parent !== undefined) this.#meta.removeChild(found.parent, key);
      return found;
    });
    // After the record: a crash from here on leaves a directory no record names, which cleanup removes.
    const aside = this.#layout.retire(record.id);
    if (aside !== undefined) this.#layout.discard(aside);
  }

  async stat(key: string): Promise<Info> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    return infoOf(key, this.#record(key));
  }

  async update(info: InfoUpdate, fieldpaths: readonly string[] = []): Promise<Info> {
    this.#live();
    checkKey(info.name);
    const given = checkLabels(info.labels ?? {});
    return this.#meta.transaction(() => {
      const record = this.#record(info.name);
      const labels = checkLabels(updateLabels(record.labels, given, fieldpaths));
      const updated: SnapshotRecord = { ...record, labels, updated: Math.max(Date.now(), record.updated) };
      this.#meta.snapshots.put(info.name, updated);
      return infoOf(info.name, updated);
    });
  }

  async usage(key: string): Promise<Usage> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    if (record.kind === 'committed' && record.size !== undefined) return { size: record.size, inodes: record.inodes ?? 0 };
    return diskUsage(this.#layout.fs(record.id));
  }

  async walk(fn: (info: Info) => void | Promise<void>, ...filters: string[]): Promise<void> {
    this.#live();
    const parsed = filters.map(parseFilter);
    this.#meta.refresh();
    const infos: Info[] = [];
    for (const { key, value } of this.#meta.snapshots.getRange()) {
      const lookup = (path: readonly string[]): string | undefined => {
        switch (path[0]) {
          case 'name':
            return path.length === 1 ? key : undefined;
          case 'kind':
            return path.length === 1 ? value.kind : undefined;
          case 'parent':
            return path.length === 1 ? (value.parent ?? '') : undefined;
          case 'labels':
            return path.length === 2 ? value.labels[path[1]!] : undefined;
          default:
            return undefined;
        }
      };
      if (matchesAny(parsed, lookup)) infos.push(infoOf(key, value));
    }
    for (const info of infos) await fn(info);
  }

  async cleanup(): Promise<void> {
    this.#live();
    // Inside a write transaction: no other process is between publishing a directory and recording it.
    const doomed = this.#meta.transaction(() => {
      const listing = this.#layout.list();
      const live = new Set<number>();
      for (const { value } of this.#meta.snapshots.getRange()) live.add(value.id);
      const aside: string[] = [...listing.removing, ...listing.deadStaging];
      for (const id of listing.ids) {
        if (live.has(id)) continue;
        const moved = this.#layout.retire(id);
        if (moved !== undefined) aside.push(moved);
      }
      return aside;
    });
    // Every directory gets its try: one that cannot go (a mount point still in use) does not keep the rest.
    const failures: string[] = [];
    for (const path of doomed) {
      try {
        this.#layout.discard(path);
      } catch (error) {
        failures.push(`${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }
    if (failures.length > 0) throw new FailedPreconditionError(`cleanup could not remove ${failures.length} director${failures.length === 1 ? 'y' : 'ies'}: ${failures.join('; ')}`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#meta.close();
  }

  // ---- strata's additions ---------------------------------------------------------------------

  async mount(key: string, target: string): Promise<void> {
    if (!this.#impl.mountsWithKernel) {
      throw new UnsupportedError(`the ${this.driver} driver makes no kernel mounts: open the snapshot instead (its userspace view)`, { path: key });
    }
    mountAll(await this.mounts(key), target);
  }

  async unmount(target: string): Promise<void> {
    unmount(target);
  }

  async layers(key: string): Promise<LayerTree[]> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    return this.#impl.layers(record.kind, this.#layout.fs(record.id), this.#chain(record.parent));
  }

  async open(key: string): Promise<WritableLayer> {
    this.#live();
    checkKey(key);
    this.#meta.refresh();
    const record = this.#record(key);
    return this.#impl.open(record.kind, this.#own(record), this.#chain(record.parent));
  }

  async fsck(options: { repair?: boolean } = {}): Promise<FsckReport> {
    this.#live();
    const repair = options.repair ?? false;
    const problems: FsckProblem[] = [];
    let count = 0;
    const doomed: string[] = [];
    // One write transaction: the records and the directories are seen at one instant, and repaired together.
    const actives = this.#meta.transaction(() => {
      const records = new Map<string, SnapshotRecord>();
      for (const { key, value } of this.#meta.snapshots.getRange()) records.set(key, value);
      count = records.size;
      const listing = this.#layout.list();
      const ids = new Set(listing.ids);
      const byId = new Set<number>();
      const activeOnes: Array<[string, SnapshotRecord]> = [];
      for (const [key, record] of records) {
        byId.add(record.id);
        if (!ids.has(record.id) || !existsSync(this.#layout.fs(record.id))) {
          const hasChildren = this.#meta.children(key).length > 0;
          const fixed = repair && !hasChildren;
          if (fixed) {
            this.#meta.snapshots.remove(key);
            if (record.parent !== undefined) this.#meta.removeChild(record.parent, key);
            records.delete(key);
          }
          problems.push({ kind: 'missing-directory', key, path: this.#layout.dir(record.id), detail: `its directory is missing${hasChildren ? ' and it has children: restore it from backup or remove the children' : ''}`, repaired: fixed });
          continue;
        }
        if (record.parent !== undefined) {
          const parent = records.get(record.parent);
          if (parent === undefined) problems.push({ kind: 'missing-parent', key, detail: `its parent ${quote(record.parent)} does not exist`, repaired: false });
          else if (parent.kind !== 'committed') problems.push({ kind: 'parent-not-committed', key, detail: `its parent ${quote(record.parent)} is ${parent.kind}`, repaired: false });
        }
        if (record.kind === 'active') activeOnes.push([key, record]);
      }
      for (const id of ids) {
        if (byId.has(id)) continue;
        const fixed = repair;
        if (fixed) {
          const moved = this.#layout.retire(id);
          if (moved !== undefined) doomed.push(moved);
        }
        problems.push({ kind: 'orphan-directory', path: this.#layout.dir(id), detail: 'no snapshot records this directory', repaired: fixed });
      }
      for (const path of listing.deadStaging) {
        if (repair) doomed.push(path);
        problems.push({ kind: 'stale-staging', path, detail: 'a snapshot being made when its process ended', repaired: repair });
      }
      for (const path of listing.removing) {
        if (repair) doomed.push(path);
        problems.push({ kind: 'unfinished-removal', path, detail: 'a removed snapshot whose directory was not deleted', repaired: repair });
      }
      for (const path of listing.unknown) problems.push({ kind: 'unknown-entry', path, detail: 'not part of the layout; left alone', repaired: false });
      // The children index says exactly what the records' parents say.
      const expected = new Set<string>();
      for (const [key, record] of records) if (record.parent !== undefined && records.has(key)) expected.add(`${record.parent}\0${key}`);
      const actual = new Set<string>();
      for (const [parent, child] of this.#meta.childPairs()) actual.add(`${parent}\0${child}`);
      const differs = expected.size !== actual.size || [...expected].some((pair) => !actual.has(pair));
      if (differs) {
        if (repair) this.#meta.rebuildChildren();
        problems.push({ kind: 'children-index', detail: 'the children index disagrees with the records', repaired: repair });
      }
      return activeOnes;
    });
    for (const path of doomed) this.#layout.discard(path);
    // Outside the transaction (it reads whole trees): an active snapshot's upper must be one a diff can read.
    if (this.#impl.name !== 'native') {
      for (const [key, record] of actives) {
        const detail = this.#invalidUpper(record);
        if (detail !== undefined) problems.push({ kind: 'invalid-upper', key, path: this.#layout.fs(record.id), detail, repaired: false });
      }
    }
    return { snapshots: count, problems, ok: problems.every((p) => p.repaired) };
  }

  /** Why an active snapshot's upper is not a valid overlay upper for this root, or undefined. */
  #invalidUpper(record: SnapshotRecord): string | undefined {
    if (!existsSync(this.#layout.work(record.id))) return 'its overlay work directory is missing';
    const ns = this.#settings.xattrNamespace;
    const refused = [`${ns}.overlay.redirect`, `${ns}.overlay.metacopy`];
    try {
      for (const { entry } of walkHostDirectory(this.#layout.fs(record.id))) {
        for (const name of refused) if (entry.xattrs.has(name)) return `${quote(entry.path)} carries ${name} (a redirect_dir or metacopy mount wrote it)`;
      }
    } catch (error) {
      return `its upper cannot be read: ${(error as Error).message}`;
    }
    return undefined;
  }
}

/** Where the database of a root lives. */
export function metadataPath(root: string): string {
  return join(root, 'metadata.db');
}

/** Whether the drivers `a` and `b` can share a root. */
export function compatibleDrivers(a: DriverName, b: DriverName): boolean {
  return a === b || (LAYERED.has(a) && LAYERED.has(b));
}
