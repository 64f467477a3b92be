/**
 * The build cache: a step's key (see `builder.ts` for what goes in it) → the committed snapshot and the layer
 * the step made. Each record is held by a lease of its own (no expiry), so collection keeps the snapshot and
 * the layer blob while the record lives, and drops them once `prune` deleted it and nothing else holds them.
 * Records, their leases, and the checksums remembered for files of committed snapshots all live in the
 * root's database.
 */
import { statfsSync } from 'node:fs';
import type { LayerDescriptor } from '@strata/core';
import type { Images } from '@strata/images';
import type { Table } from '@strata/snapshotter';
import { BufferedTable } from './buffered-table.js';
import { CacheMounts, cacheMountsDir } from './cache-mounts.js';
import { FileChecksums } from './checksums.js';
import { UrlRecords } from './url-records.js';

/** What a cached step left. */
export interface CacheRecord {
  /** The committed snapshot of the tree after the step (named by chainID). */
  readonly snapshot: string;
  readonly layer: LayerDescriptor;
  /** The step, for `build cache ls`. */
  readonly step: string;
  readonly created: number;
  readonly used: number;
}

/** One record as `build cache ls` shows it. */
export interface CacheEntry extends CacheRecord {
  readonly key: string;
}

/** What a record keeps on disk, named by kind (an uncompressed layer's digest is also a bottom snapshot's chainID). */
function recordUnits(record: CacheRecord): [string, string] {
  return [`blob ${record.layer.digest}`, `snapshot ${record.snapshot}`];
}

/** What `prune` deletes. */
export interface CachePruneOptions {
  /** Only records (and cache mounts) not used since this time (`--filter until=`, `--older-than`). */
  readonly before?: Date;
  /** Stop once what is left (records' layers and cache mounts) takes at most this many bytes (`--keep-storage`, `--max-used-space`). */
  readonly keepBytes?: number;
  /** Never prune below this many bytes (`--reserved-space`). */
  readonly reservedSpace?: number;
  /** Prune until the file system of the root has this many bytes free (`--min-free-space`), or nothing is left to prune. */
  readonly minFreeSpace?: number;
}

/**
 * How many bytes of cache a size-bounded prune keeps, as BuildKit works it out (cache/manager.go,
 * calculateKeepBytes): `keepBytes`, lowered to what frees `minFreeSpace` when the disk has less free, never
 * below `reservedSpace`; with only `minFreeSpace` and enough free, everything.
 */
export function bytesToKeep(options: Pick<CachePruneOptions, 'keepBytes' | 'reservedSpace' | 'minFreeSpace'>, total: number, free: number): number {
  const { keepBytes, reservedSpace, minFreeSpace } = options;
  let keep = keepBytes ?? 0;
  if (minFreeSpace !== undefined) {
    const excess = minFreeSpace - free;
    if (excess > 0) keep = keepBytes === undefined ? total - excess : Math.min(keep, total - excess);
    else if (keepBytes === undefined) keep = total;
  }
  return Math.max(keep, reservedSpace ?? 0);
}

const LEASE = 'build-cache:';

export class BuildCache {
  readonly #images: Images;
  readonly #records: Table<CacheRecord>;
  /** Checksums of files in committed snapshots (by snapshot and path). */
  readonly #sums: BufferedTable<string>;

  constructor(images: Images) {
    this.#images = images;
    this.#records = images.root.metadata.table<CacheRecord>('build-cache');
    this.#sums = new BufferedTable<string>(images.root.metadata, 'build-sums');
  }

  /** The record for `key`, when it is there and what it names still exists; a broken record is dropped. */
  async get(key: string): Promise<CacheRecord | undefined> {
    this.#images.root.metadata.refresh();
    const record = this.#records.get(key);
    if (record === undefined) return undefined;
    let whole = this.#images.content.has(record.layer.digest);
    if (whole) {
      try {
        whole = (await this.#images.snapshotter.stat(record.snapshot)).kind === 'committed';
      } catch {
        whole = false;
      }
    }
    if (!whole) {
      this.#drop([key]);
      return undefined;
    }
    this.#images.root.metadata.transaction(() => this.#records.put(key, { ...record, used: Date.now() }));
    return record;
  }

  /**
   * Records `key` (replacing a record there), its lease holding the snapshot and the layer blob; `created`
   * is when the layer was made (default now), which the images built with it give that step.
   */
  put(key: string, record: Omit<CacheRecord, 'created' | 'used'>, created = Date.now()): void {
    const { leases, root } = this.#images;
    root.metadata.transaction(() => {
      const id = LEASE + key;
      if (leases.list().some((l) => l.id === id)) leases.delete(id);
      leases.create({ id, labels: { 'strata.io/build-cache': key } });
      leases.add(id, { type: 'snapshot', id: record.snapshot }, { type: 'content', id: record.layer.digest });
      this.#records.put(key, { ...record, created, used: Date.now() });
    });
  }

  /** Every record, most recently used first. */
  list(): CacheEntry[] {
    this.#images.root.metadata.refresh();
    return [...this.#records.entries()].map(({ key, value }) => ({ key, ...value })).sort((a, b) => b.used - a.used);
  }

  /**
   * The space the cache takes, as `docker system df` counts its build cache: each record by what it keeps
   * on disk (its layer blob and its snapshot, each counted once however many records share it) and each
   * cache mount (what `du` counts), active while a build holds it; what is not active is reclaimable.
   */
  async usage(): Promise<{ total: number; active: number; size: number; reclaimable: number }> {
    const records = this.list();
    const { mounts, total } = await this.#weigh(records);
    const held = mounts.filter((m) => m.held);
    return { total: records.length + mounts.length, active: held.length, size: total, reclaimable: total - held.reduce((sum, m) => sum + m.size, 0) };
  }

  /**
   * The bytes each record keeps on disk, by key: its layer blob and its snapshot's own usage (frozen at
   * commit), as BuildKit sizes a record by its snapshot; a part another record shares counts for each.
   */
  async sizes(records: readonly CacheEntry[] = this.list()): Promise<Map<string, number>> {
    const units = await this.#units(records);
    return new Map(records.map((r) => [r.key, recordUnits(r).reduce((sum, unit) => sum + units.get(unit)!.size, 0)]));
  }

  /**
   * What `records` and the cache mounts weigh: each blob and snapshot once, with how many of the records
   * hold it (so a prune knows when it frees one), and each mount what `du` counts.
   */
  async #weigh(records: readonly CacheEntry[]): Promise<{ units: Map<string, { size: number; holders: number }>; mounts: ReturnType<CacheMounts['list']>; total: number }> {
    const units = await this.#units(records);
    let total = 0;
    for (const unit of units.values()) total += unit.size;
    const mounts = new CacheMounts(cacheMountsDir(this.#images)).list();
    for (const mount of mounts) total += mount.size;
    return { units, mounts, total };
  }

  /** The blobs and snapshots `records` keep, each once, with its bytes and how many of the records hold it. */
  async #units(records: readonly CacheEntry[]): Promise<Map<string, { size: number; holders: number }>> {
    const units = new Map<string, { size: number; holders: number }>();
    for (const record of records) {
      for (const unit of recordUnits(record)) {
        const known = units.get(unit);
        if (known !== undefined) {
          known.holders++;
          continue;
        }
        // A snapshot gone from under a record (or never made) weighs nothing.
        const size = unit.startsWith('blob ') ? record.layer.size : ((await this.#images.snapshotSize(record.snapshot)) ?? 0);
        units.set(unit, { size, holders: 1 });
      }
    }
    return units;
  }

  /**
   * Deletes records (all, or those not used since `before`) and their leases; the next collection frees
   * what only they held. The cache mounts' directories no build holds go too (all, or those no step has had
   * since `before`). With `keepBytes`, `reservedSpace` or `minFreeSpace`, as `docker builder prune
   * --keep-storage` (and `--reserved-space`, `--min-free-space`) does: records and cache mounts together,
   * least recently used first, only until what is left takes at most what `bytesToKeep` says (a record its
   * layer blob and snapshot, each once however many records hold it, as `usage` sizes them; a mount what
   * `du` counts).
   * Pruning all also forgets the remembered checksums (of snapshot and context files) and what ADD's URLs
   * answered. Returns the keys of the records deleted, least recently used first.
   */
  async prune(options: CachePruneOptions = {}): Promise<string[]> {
    const { before, keepBytes, reservedSpace, minFreeSpace } = options;
    const unused = (used: number) => before === undefined || used < before.getTime();
    const records = this.list();
    const mounts = new CacheMounts(cacheMountsDir(this.#images));
    if (keepBytes === undefined && reservedSpace === undefined && minFreeSpace === undefined) {
      const keys = records.filter((r) => unused(r.used)).map((r) => r.key).reverse();
      this.#drop(keys);
      if (before === undefined) {
        this.#sums.clear();
        new FileChecksums(this.#images.root.metadata).clear();
        new UrlRecords(this.#images.root.metadata).clear();
      }
      mounts.prune(before);
      return keys;
    }
    const weighed = await this.#weigh(records);
    const { units, mounts: dirs } = weighed;
    let total = weighed.total;
    let free = 0;
    if (minFreeSpace !== undefined) {
      const fs = statfsSync(this.#images.root.path);
      free = fs.bavail * fs.bsize;
    }
    const keep = bytesToKeep(options, total, free);
    type Candidate = { used: number; record: CacheEntry } | { used: number; mount: string; size: number };
    const candidates: Candidate[] = [
      ...records.filter((r) => unused(r.used)).map((record) => ({ used: record.used, record })),
      ...dirs.filter((d) => !d.held && unused(d.used)).map((d) => ({ used: d.used, mount: d.name, size: d.size })),
    ].sort((a, b) => a.used - b.used);
    const keys: string[] = [];
    for (const candidate of candidates) {
      if (total <= keep) break;
      if ('record' in candidate) {
        keys.push(candidate.record.key);
        for (const name of recordUnits(candidate.record)) {
          const unit = units.get(name)!;
          if (--unit.holders === 0) total -= unit.size;
        }
      } else if (mounts.remove(candidate.mount)) {
        total -= candidate.size;
      }
    }
    this.#drop(keys);
    return keys;
  }

  #drop(keys: readonly string[]): void {
    const { leases, root } = this.#images;
    root.metadata.transaction(() => {
      const ids = new Set(leases.list().map((l) => l.id));
      for (const key of keys) {
        this.#records.remove(key);
        if (ids.has(LEASE + key)) leases.delete(LEASE + key);
      }
    });
  }

  /** A checksum of a file in a committed snapshot, remembered (committed snapshots never change). */
  async fileSum(snapshot: string, path: string, compute: () => Promise<string>): Promise<string> {
    const key = `${snapshot}\0${path}`;
    const known = this.#sums.get(key);
    if (known !== undefined) return known;
    const sum = await compute();
    this.#sums.set(key, sum);
    return sum;
  }

  /** Writes the checksums learnt since the last flush, in one transaction. */
  flush(): void {
    this.#sums.flush();
  }
}
