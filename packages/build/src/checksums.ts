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
import { alignedBuffer } from '@strata/core';
import type { Metadata } from '@strata/snapshotter';
import { BufferedTable } from './buffered-table.js';
import { hashStream, readChunks } from './sources.js';

interface FileRecord {
  /** Device, inode, size, mtime and ctime, as the context walk read them. */
  readonly stamp: string;
  readonly sum: string;
}

/** A record is kept only when the file's ctime is this much older than the reading of it (seconds). */
const RACY_SECONDS = 0.01;

export class FileChecksums {
  readonly #records: BufferedTable<FileRecord>;
  /** Read buffers, one per checksum in flight. */
  readonly #buffers: Buffer[] = [];
  /** Files read (hashed) and files answered from records, since this object was made. */
  hashed = 0;
  reused = 0;

  constructor(metadata: Metadata) {
    this.#records = new BufferedTable<FileRecord>(metadata, 'build-files');
  }

  /** The checksum of the regular file at `path` (absolute), whose stat the context walk took. */
  async of(path: string, node: { readonly size: number; readonly stamp?: string; readonly ctime?: number }): Promise<string> {
    const known = node.stamp === undefined ? undefined : this.#records.get(path);
    if (known !== undefined && known.stamp === node.stamp) {
      this.reused++;
      return known.sum;
    }
    const startedAt = Date.now() / 1000;
    const buffer = this.#buffers.pop() ?? alignedBuffer(1024 * 1024);
    let sum: string;
    try {
      sum = await hashStream(readChunks(path, node.size, buffer));
    } finally {
      this.#buffers.push(buffer);
    }
    this.hashed++;
    if (node.stamp !== undefined && node.ctime !== undefined && node.ctime < startedAt - RACY_SECONDS) this.#records.set(path, { stamp: node.stamp, sum });
    else this.#records.forget(path);
    return sum;
  }

  /** Writes the records learnt since the last flush. */
  flush(): void {
    this.#records.flush();
  }

  /** Forgets every record (`build cache prune`). Returns how many there were. */
  clear(): number {
    return this.#records.clear();
  }
}
