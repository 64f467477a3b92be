/**
 * A table of the root's database whose new records a build keeps in memory and writes in one transaction
 * (`flush`), as it learns them a file or a URL at a time: the checksums of context and snapshot files, what
 * ADD's URLs answered.
 */
import type { Metadata, Table } from '@strata/snapshotter';

export class BufferedTable<T> {
  readonly #table: Table<T>;
  readonly #metadata: Metadata;
  readonly #pending = new Map<string, T>();

  constructor(metadata: Metadata, name: string) {
    this.#metadata = metadata;
    this.#table = metadata.table<T>(name);
  }

  /** The record for `key`: learnt in this build, else stored. */
  get(key: string): T | undefined {
    return this.#pending.get(key) ?? this.#table.get(key);
  }

  /** Keeps `value` for the next flush. */
  set(key: string, value: T): void {
    this.#pending.set(key, value);
  }

  /** Drops what this build learnt for `key` (a stored record stays). */
  forget(key: string): void {
    this.#pending.delete(key);
  }

  /** Writes the records learnt since the last flush. */
  flush(): void {
    if (this.#pending.size === 0) return;
    this.#metadata.transaction(() => {
      for (const [key, value] of this.#pending) this.#table.put(key, value);
    });
    this.#pending.clear();
  }

  /** Removes every stored record. Returns how many there were. */
  clear(): number {
    let n = 0;
    this.#metadata.transaction(() => {
      for (const { key } of [...this.#table.entries()]) {
        this.#table.remove(key);
        n++;
      }
    });
    return n;
  }
}
