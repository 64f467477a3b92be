/**
 * The image store: names → descriptors (an index or a manifest), with created and updated times and labels,
 * in the root's database, as containerd keeps images.
 *
 * Docker's rules for names on top: moving a name to another image (an import, a tag, a commit) leaves the
 * image it named *dangling* when no other name is left on it: kept, untagged, listed as dangling, until
 * `prune` removes it. Dangling images are records under `dangling@<digest>` (a key no normalized name can
 * take: names always hold a `/`).
 */
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, quote } from '@strata/core';
import type { Metadata, Table } from '@strata/snapshotter';
import type { Descriptor } from './documents.js';
import { normalizeReference } from './reference.js';

/** An image as the store holds it. */
export interface Image {
  /** The full name (`docker.io/library/alpine:3.20`), or undefined for a dangling image. */
  readonly name: string | undefined;
  /** The key of its record: its name, or `dangling@<digest>`. */
  readonly key: string;
  /** The image's index or manifest. */
  readonly target: Descriptor;
  readonly created: Date;
  readonly updated: Date;
  readonly labels: Readonly<Record<string, string>>;
}

interface ImageRecord {
  readonly target: Descriptor;
  readonly created: number;
  readonly updated: number;
  readonly labels: Record<string, string>;
}

const DANGLING = 'dangling@';
const ID = /^(?:sha256:)?([0-9a-f]{12,64})$/;

function imageOf(key: string, record: ImageRecord): Image {
  return {
    name: key.startsWith(DANGLING) ? undefined : key,
    key,
    target: record.target,
    created: new Date(record.created),
    updated: new Date(record.updated),
    labels: { ...record.labels },
  };
}

export class ImageStore {
  readonly #metadata: Metadata;
  readonly #records: Table<ImageRecord>;

  constructor(metadata: Metadata) {
    this.#metadata = metadata;
    this.#records = metadata.table<ImageRecord>('images');
  }

  /** Every image, named ones by name, then the dangling ones (newest first). */
  list(): Image[] {
    this.#metadata.refresh();
    return this.current();
  }

  /** `list` as the caller's transaction sees it (no refresh: inside a transaction, reads are its own). */
  current(): Image[] {
    const all = [...this.#records.entries()].map(({ key, value }) => imageOf(key, value));
    const named = all.filter((i) => i.name !== undefined);
    const dangling = all.filter((i) => i.name === undefined).sort((a, b) => b.created.getTime() - a.created.getTime());
    return [...named, ...dangling];
  }

  /** The image named `name` (normalized first), or undefined. */
  get(name: string): Image | undefined {
    const key = normalizeReference(name);
    const record = this.#records.get(key);
    return record === undefined ? undefined : imageOf(key, record);
  }

  /**
   * The images `text` names: a name (normalized), or an image ID (the target digest, or a unique prefix of
   * at least 12 hex digits) that may carry several names. Throws NOT_FOUND, INVALID_ARGUMENT (an
   * ambiguous prefix).
   */
  resolve(text: string): Image[] {
    this.#metadata.refresh();
    const id = ID.exec(text);
    if (id) {
      const matches = this.current().filter((image) => image.target.digest.slice('sha256:'.length).startsWith(id[1]!));
      const digests = new Set(matches.map((image) => image.target.digest));
      if (digests.size > 1) throw new InvalidArgumentError(`image ID ${quote(text)} is ambiguous: it begins ${digests.size} images' digests`);
      if (matches.length > 0) return matches;
    }
    let key: string;
    try {
      key = normalizeReference(text);
    } catch (error) {
      if (id) throw new NotFoundError(`no image has the ID ${quote(text)}`, { path: text });
      throw error;
    }
    const record = this.#records.get(key);
    if (record === undefined) throw new NotFoundError(`image ${quote(text)} does not exist`, { path: text });
    return [imageOf(key, record)];
  }

  /** Whether a record `key` (a name as stored, or a dangling key) exists. */
  has(key: string): boolean {
    return this.#records.get(key) !== undefined;
  }

  /** Names (not dangling records) on the image with target `digest`. */
  namesOf(digest: string): string[] {
    return this.namesByDigest().get(digest) ?? [];
  }

  /** Every image's names (not dangling records) by target digest, in one pass over the records. */
  namesByDigest(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const { key, value } of this.#records.entries()) {
      if (key.startsWith(DANGLING)) continue;
      const names = out.get(value.target.digest);
      if (names) names.push(key);
      else out.set(value.target.digest, [key]);
    }
    return out;
  }

  /**
   * Points `name` at `target` (in the caller's transaction, when there is one). The image the name left
   * becomes dangling when no name is left on it; a dangling record of `target` goes (it is named now).
   * With `replace: false`, an existing name is ALREADY_EXISTS. Returns the name as stored.
   */
  put(name: string, target: Descriptor, options: { labels?: Record<string, string>; replace?: boolean } = {}): string {
    const key = normalizeReference(name);
    return this.#metadata.transaction(() => {
      const now = Date.now();
      const before = this.#records.get(key);
      if (before !== undefined && options.replace === false) throw new AlreadyExistsError(`image ${quote(key)} already exists`, { path: key });
      this.#records.put(key, { target, created: before?.target.digest === target.digest ? before.created : now, updated: now, labels: { ...(options.labels ?? before?.labels ?? {}) } });
      this.#records.remove(`${DANGLING}${target.digest}`);
      if (before !== undefined && before.target.digest !== target.digest && this.namesOf(before.target.digest).length === 0) {
        this.#records.put(`${DANGLING}${before.target.digest}`, { ...before, updated: now });
      }
      return key;
    });
  }

  /** Records `target` as a dangling image (an import of an unnamed image), unless a name already holds it. */
  putDangling(target: Descriptor): string {
    return this.#metadata.transaction(() => {
      const key = `${DANGLING}${target.digest}`;
      if (this.namesOf(target.digest).length > 0) return this.namesOf(target.digest)[0]!;
      const now = Date.now();
      if (this.#records.get(key) === undefined) this.#records.put(key, { target, created: now, updated: now, labels: {} });
      return key;
    });
  }

  /** Removes the record `key` (a name or a dangling key). Throws NOT_FOUND. */
  delete(key: string): void {
    this.#metadata.transaction(() => {
      if (this.#records.get(key) === undefined) throw new NotFoundError(`image ${quote(key)} does not exist`, { path: key });
      this.#records.remove(key);
    });
  }

  /** @internal For collection: every record's target, read in the caller's transaction. */
  *targets(): Generator<Descriptor> {
    for (const { value } of this.#records.entries()) yield value.target;
  }
}
