/**
 * Checksums of build-context files that cost what changed. Each file's checksum is remembered with its
 * device, inode, size, mtime and ctime (nanoseconds); a file whose five still match is not read again. The
 * ctime is what makes this safe: tools can set a file's mtime back after rewriting it with the same size
 * (the stale-COPY reports against Docker and BuildKit), but nothing a user runs can set the ctime back.
 *
 * A file changed within the clock tick its checksum was taken in could change again unseen in that tick
 * (git's "racily clean" case): such a record is not kept, and the file is read again next time.
 *
 * Records live in the root's database (table `build-files`, keyed by the file's absolute path) and are
 * written in one transaction per build (`flush`).
 */
import { stat } from 'node:fs/promises';
import type { Metadata, Table } from '@strata/snapshotter';
import { createReadStream } from 'node:fs';
import { hashStream } from './sources.js';

interface FileRecord {
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtime: string;
  readonly ctime: string;
  readonly sum: string;
}

/** A record is trusted only if the file's ctime is at least this much older than the reading of it. */
const RACY_NS = 10_000_000n;

export class FileChecksums {
  readonly #table: Table<FileRecord>;
  readonly #metadata: Metadata;
  readonly #pending = new Map<string, FileRecord>();
  /** Files read (hashed) and files answered from records, since this object was made. */
  hashed = 0;
  reused = 0;

  constructor(metadata: Metadata) {
    this.#metadata = metadata;
    this.#table = metadata.table<FileRecord>('build-files');
  }

  /** The checksum of the regular file at `path` (absolute). */
  async of(path: string): Promise<string> {
    const st = await stat(path, { bigint: true });
    const fields = { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtime: String(st.mtimeNs), ctime: String(st.ctimeNs) };
    const known = this.#pending.get(path) ?? this.#table.get(path);
    if (known && known.dev === fields.dev && known.ino === fields.ino && known.size === fields.size && known.mtime === fields.mtime && known.ctime === fields.ctime) {
      this.reused++;
      return known.sum;
    }
    const wall = BigInt(Date.now()) * 1_000_000n;
    const sum = await hashStream(createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>);
    this.hashed++;
    if (st.ctimeNs < wall - RACY_NS) this.#pending.set(path, { ...fields, sum });
    else this.#pending.delete(path);
    return sum;
  }

  /** Writes the records learnt since the last flush. */
  flush(): void {
    if (this.#pending.size === 0) return;
    this.#metadata.transaction(() => {
      for (const [path, record] of this.#pending) this.#table.put(path, record);
    });
    this.#pending.clear();
  }

  /** Forgets every record (`build cache prune`). Returns how many there were. */
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
