/**
 * What ADD's URLs answered before, by URL: the response's validators (ETag, Last-Modified) and what its bytes
 * were (size, sha256, the file's time), so that a rebuild asks the server whether anything changed (a
 * conditional GET) and fetches the bytes only when the step has to run again, as BuildKit revalidates its
 * HTTP sources. In the root's database (table `build-urls`, keyed by the URL's sha256: no credentials are
 * kept), written once per build (`flush`); `strata build cache prune` forgets them with the rest.
 */
import { createHash } from 'node:crypto';
import type { Validators } from '@strata/registry';
import type { Metadata } from '@strata/snapshotter';
import { BufferedTable } from './buffered-table.js';

export interface UrlRecord {
  readonly validators: Validators;
  /** Hex sha256 of the bytes. */
  readonly sha256: string;
  readonly size: number;
  /** The `Last-Modified` the file's time came from, in seconds, or null (the epoch). */
  readonly lastModified: number | null;
}

export class UrlRecords {
  readonly #records: BufferedTable<UrlRecord>;

  constructor(metadata: Metadata) {
    this.#records = new BufferedTable<UrlRecord>(metadata, 'build-urls');
  }

  static #key(url: string): string {
    return createHash('sha256').update(url).digest('hex');
  }

  get(url: string): UrlRecord | undefined {
    return this.#records.get(UrlRecords.#key(url));
  }

  /** Remembers what `url` answered (only a response with a validator can be asked about again). */
  set(url: string, record: UrlRecord): void {
    if (record.validators.etag !== undefined || record.validators.lastModified !== undefined) this.#records.set(UrlRecords.#key(url), record);
  }

  /** Writes what was learnt since the last flush. */
  flush(): void {
    this.#records.flush();
  }

  /** Forgets every record. */
  clear(): void {
    this.#records.clear();
  }
}
