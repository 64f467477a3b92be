/**
 * Container records: a named active snapshot on an image's chain, with the image it was made from. The
 * record is what keeps the image's content and snapshots alive for collection (even after the image's name
 * is gone: `image rm --force`), and what `commit` builds on.
 */
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, quote } from '@strata/core';
import type { Metadata, Table } from '@strata/snapshotter';
import type { Descriptor } from './documents.js';

export interface Container {
  readonly name: string;
  /** The image's name when the container was made (it may have moved since). */
  readonly image: string;
  /** The image's index or manifest, as it was. */
  readonly target: Descriptor;
  /** The platform manifest the container runs. */
  readonly manifest: Descriptor;
  /** The chainID of the image's top layer: the container's parent snapshot. */
  readonly chainID: string;
  /** The active snapshot that holds the container's changes. */
  readonly snapshot: string;
  readonly created: Date;
  readonly labels: Readonly<Record<string, string>>;
}

interface ContainerRecord {
  readonly image: string;
  readonly target: Descriptor;
  readonly manifest: Descriptor;
  readonly chainID: string;
  readonly snapshot: string;
  readonly created: number;
  readonly labels: Record<string, string>;
}

/** Docker's rule for container names. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Throws INVALID_ARGUMENT unless `name` is a container name. */
export function checkContainerName(name: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`container name ${quote(String(name))} is not [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)`);
  return name;
}

/** The snapshot key of a container's layer. */
export function containerSnapshotKey(name: string): string {
  return `container-${name}`;
}

function containerOf(name: string, r: ContainerRecord): Container {
  return { name, image: r.image, target: r.target, manifest: r.manifest, chainID: r.chainID, snapshot: r.snapshot, created: new Date(r.created), labels: { ...r.labels } };
}

export class ContainerStore {
  readonly #metadata: Metadata;
  readonly #records: Table<ContainerRecord>;

  constructor(metadata: Metadata) {
    this.#metadata = metadata;
    this.#records = metadata.table<ContainerRecord>('containers');
  }

  list(): Container[] {
    this.#metadata.refresh();
    return [...this.#records.entries()].map(({ key, value }) => containerOf(key, value));
  }

  /** The container `name`. Throws NOT_FOUND. */
  get(name: string): Container {
    this.#metadata.refresh();
    const record = this.#records.get(name);
    if (record === undefined) throw new NotFoundError(`container ${quote(name)} does not exist`, { path: name });
    return containerOf(name, record);
  }

  has(name: string): boolean {
    this.#metadata.refresh();
    return this.#records.get(name) !== undefined;
  }

  /** Records a container (in the caller's transaction, when there is one). Throws ALREADY_EXISTS. */
  put(container: Omit<Container, 'created'>): Container {
    checkContainerName(container.name);
    return this.#metadata.transaction(() => {
      if (this.#records.get(container.name) !== undefined) throw new AlreadyExistsError(`container ${quote(container.name)} already exists`, { path: container.name });
      const { name, ...rest } = container;
      const record: ContainerRecord = { ...rest, labels: { ...rest.labels }, created: Date.now() };
      this.#records.put(name, record);
      return containerOf(name, record);
    });
  }

  /** Forgets a container's record. Throws NOT_FOUND. */
  delete(name: string): void {
    this.#metadata.transaction(() => {
      if (this.#records.get(name) === undefined) throw new NotFoundError(`container ${quote(name)} does not exist`, { path: name });
      this.#records.remove(name);
    });
  }

  /** The containers made from the image with target `digest` (as of the caller's transaction, when there is one). */
  using(digest: string): Container[] {
    return this.usersByDigest().get(digest) ?? [];
  }

  /** The containers by the digests they use (their image's target and manifest), in one pass over the records. */
  usersByDigest(): Map<string, Container[]> {
    const out = new Map<string, Container[]>();
    for (const { key, value } of this.#records.entries()) {
      const container = containerOf(key, value);
      for (const digest of new Set([value.target.digest, value.manifest.digest])) {
        const users = out.get(digest);
        if (users) users.push(container);
        else out.set(digest, [container]);
      }
    }
    return out;
  }

  /** @internal For collection, in its transaction: every container's roots. */
  *roots(): Generator<{ target: Descriptor; manifest: Descriptor; snapshot: string }> {
    for (const { value } of this.#records.entries()) yield { target: value.target, manifest: value.manifest, snapshot: value.snapshot };
  }
}
