/**
 * The metadata database of one root: LMDB (through lmdb-js), the closest relative of the bbolt store
 * containerd keeps its metadata in. One file (`metadata.db`, with its `-lock` file) holds named databases:
 * snapshots now; images, containers, content labels and leases as later parts of strata add them.
 *
 * Why LMDB: transactions are atomic and durable, and a crash (a SIGKILL, a power cut) at any instant
 * leaves either the old or the new state, because pages are copied on write and a commit is one meta-page
 * flip; several processes may open the same root, writers serialised by LMDB's own lock and readers never
 * blocked; it ships prebuilt for this platform (no compiler at install), and reads cost no round trip.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { FailedPreconditionError } from '@strata/core';
import type { Kind } from './snapshotter.js';

/** What the database holds for one snapshot, under its key (or name, once committed). */
export interface SnapshotRecord {
  /** Names its directory, `snapshots/<id>`; never reused. */
  readonly id: number;
  readonly kind: Kind;
  readonly parent?: string;
  readonly labels: Record<string, string>;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly updated: number;
  /** Committed snapshots: the usage of their own layer, frozen at commit. */
  readonly size?: number;
  readonly inodes?: number;
}

/** Root-wide settings, fixed when the root is created. */
export interface RootSettings {
  readonly version: number;
  readonly driver: string;
  /** Namespace of the overlay markers in uppers: trusted (made as root) or user. */
  readonly xattrNamespace: 'trusted' | 'user';
}

const SCHEMA_VERSION = 1;

/**
 * The children index is keyed by [parent, child] (lmdb orders array keys element by element). Keys never
 * hold a control character, so every [parent, child] sorts between [parent] and [parent + "\u0001"].
 */
const AFTER = '\u0001';

export class MetadataStore {
  readonly #env: RootDatabase;
  /** Snapshot records by key or name. */
  readonly snapshots: Database<SnapshotRecord, string>;
  /** [parent, child] for every snapshot with a parent: children found without a scan. */
  readonly #children: Database<true, [string, string]>;
  readonly #meta: Database<unknown, string>;
  #closed = false;

  private constructor(path: string) {
    // maxDbs leaves room for the stores images, containers, content and leases will add.
    this.#env = open({ path, maxDbs: 16, compression: false, cache: false });
    this.snapshots = this.#env.openDB<SnapshotRecord, string>('snapshots', { cache: false });
    this.#children = this.#env.openDB<true, [string, string]>('children', { cache: false });
    this.#meta = this.#env.openDB<unknown, string>('meta', { cache: false });
  }

  /** Opens (creating) the database at `path`. */
  static open(path: string): MetadataStore {
    return new MetadataStore(path);
  }

  /** Runs `fn` in one write transaction: all of its changes land together, or none (when it throws). */
  transaction<T>(fn: () => T): T {
    this.#live();
    let result: T;
    this.#env.transactionSync(() => {
      result = fn();
    });
    return result!;
  }

  /** Makes later reads see what other processes committed since this one last read. */
  refresh(): void {
    this.#live();
    this.#env.resetReadTxn();
  }

  /** The root's settings, written once (in a transaction) on first use. */
  settings(initial: () => Omit<RootSettings, 'version'>): RootSettings {
    return this.transaction(() => {
      const stored = this.#meta.get('settings') as RootSettings | undefined;
      if (stored !== undefined) {
        if (stored.version !== SCHEMA_VERSION) throw new FailedPreconditionError(`metadata schema ${stored.version} is not ${SCHEMA_VERSION}`);
        return stored;
      }
      const settings: RootSettings = { version: SCHEMA_VERSION, ...initial() };
      this.#meta.put('settings', settings);
      return settings;
    });
  }

  /** Records a different driver for the root (only between drivers that share the layout). */
  setDriver(driver: string): void {
    this.transaction(() => {
      const stored = this.#meta.get('settings') as RootSettings;
      this.#meta.put('settings', { ...stored, driver });
    });
  }

  /** The next snapshot id; call inside a transaction. */
  nextId(): number {
    const id = ((this.#meta.get('next-id') as number | undefined) ?? 0) + 1;
    this.#meta.put('next-id', id);
    return id;
  }

  /** Every id ever handed out is at most this (directories of larger ids cannot be stale). */
  lastId(): number {
    return (this.#meta.get('next-id') as number | undefined) ?? 0;
  }

  addChild(parent: string, child: string): void {
    this.#children.put([parent, child], true);
  }

  removeChild(parent: string, child: string): void {
    this.#children.remove([parent, child]);
  }

  /** The keys of `parent`'s children. */
  children(parent: string): string[] {
    const out: string[] = [];
    for (const key of this.#children.getKeys({ start: [parent] as unknown as [string, string], end: [`${parent}${AFTER}`] as unknown as [string, string] })) out.push(key[1]);
    return out;
  }

  /** Every (parent, child) pair of the index. */
  *childPairs(): Generator<[string, string]> {
    for (const key of this.#children.getKeys()) yield [key[0], key[1]];
  }

  /** Rebuilds the children index from the records (fsck's repair). */
  rebuildChildren(): void {
    for (const key of [...this.#children.getKeys()]) this.#children.remove(key);
    for (const { key, value } of this.snapshots.getRange()) if (value.parent !== undefined) this.addChild(value.parent, key);
  }

  /** Closes the database; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#env.close();
  }

  #live(): void {
    if (this.#closed) throw new FailedPreconditionError('the snapshotter is closed');
  }
}
