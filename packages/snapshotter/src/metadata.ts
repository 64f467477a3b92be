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

/** A key of a table: a string, or a tuple (ordered element by element). */
export type TableKey = string | readonly (string | number)[];

/**
 * One named table of the root's database, for the stores built on the snapshotter (images, containers,
 * content labels, leases). Reads work anywhere; writes only inside `MetadataStore.transaction`, where they
 * land together with everything else the transaction does, or not at all.
 */
export interface Table<V, K extends TableKey = string> {
  get(key: K): V | undefined;
  put(key: K, value: V): void;
  remove(key: K): void;
  /** Entries in key order, from `start` (inclusive) to `end` (exclusive). */
  entries(range?: { start?: K; end?: K }): Iterable<{ key: K; value: V }>;
}

/** The root's database as the stores beside the snapshotter use it. */
export interface Metadata {
  /** Runs `fn` in one write transaction (nested calls join the enclosing one). */
  transaction<T>(fn: () => T): T;
  /** A named table (created on first use). */
  table<V, K extends TableKey = string>(name: string): Table<V, K>;
  /** Makes later reads see what other processes committed since this one last read. */
  refresh(): void;
}

/** A snapshot as a collector sees it (see `Root.snapshotRecords`). */
export interface SnapshotEntry {
  readonly key: string;
  readonly kind: Kind;
  readonly parent: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** Committed snapshots: bytes of their own layer, frozen at commit. */
  readonly size: number | undefined;
}

export class MetadataStore implements Metadata {
  readonly #env: RootDatabase;
  /** Snapshot records by key or name. */
  readonly snapshots: Database<SnapshotRecord, string>;
  /** [parent, child] for every snapshot with a parent: children found without a scan. */
  readonly #children: Database<true, [string, string]>;
  readonly #meta: Database<unknown, string>;
  readonly #tables = new Map<string, Table<unknown, TableKey>>();
  #inTransaction = false;
  #closed = false;

  private constructor(path: string) {
    // maxDbs leaves room for the stores images, containers, content and leases add.
    this.#env = open({ path, maxDbs: 32, compression: false, cache: false });
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
    if (this.#inTransaction) return fn(); // nested: part of the enclosing transaction
    let result: T;
    this.#inTransaction = true;
    try {
      this.#env.transactionSync(() => {
        result = fn();
      });
    } finally {
      this.#inTransaction = false;
    }
    return result!;
  }

  /** The named table `name` (created on first use), for stores other than the snapshots'. */
  table<V, K extends TableKey = string>(name: string): Table<V, K> {
    this.#live();
    const known = this.#tables.get(name);
    if (known !== undefined) return known as Table<V, K>;
    const db = this.#env.openDB<V, K & (string | (string | number)[])>(`x:${name}`, { cache: false });
    const writable = () => {
      if (!this.#inTransaction) throw new FailedPreconditionError(`table ${name}: writes happen inside a transaction`);
    };
    const table: Table<V, K> = {
      get: (key) => db.get(key as K & (string | (string | number)[])),
      put: (key, value) => {
        writable();
        db.put(key as K & (string | (string | number)[]), value);
      },
      remove: (key) => {
        writable();
        db.remove(key as K & (string | (string | number)[]));
      },
      entries: (range = {}) => db.getRange(range as never) as Iterable<{ key: K; value: V }>,
    };
    this.#tables.set(name, table as Table<unknown, TableKey>);
    return table;
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

  /** Every snapshot, in key order. */
  *entries(): Generator<SnapshotEntry> {
    for (const { key, value } of this.snapshots.getRange()) yield { key, kind: value.kind, parent: value.parent, labels: value.labels, size: value.size };
  }

  /**
   * Forgets the snapshots `keys` at once (call inside a transaction): their records and index entries. A
   * snapshot with a child outside `keys` is FAILED_PRECONDITION. Their directories are left for `cleanup`.
   */
  forget(keys: readonly string[]): void {
    if (!this.#inTransaction) throw new FailedPreconditionError('snapshots are forgotten inside a transaction');
    const doomed = new Set(keys);
    for (const key of doomed) {
      if (this.snapshots.get(key) === undefined) throw new FailedPreconditionError(`snapshot ${key} does not exist`);
      const kept = this.children(key).find((child) => !doomed.has(child));
      if (kept !== undefined) throw new FailedPreconditionError(`snapshot ${key} has a child, ${kept}, that stays`);
    }
    for (const key of doomed) {
      const record = this.snapshots.get(key)!;
      this.snapshots.remove(key);
      if (record.parent !== undefined) this.removeChild(record.parent, key);
    }
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
