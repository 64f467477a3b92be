/**
 * Leases, with containerd's model: a lease is an id with an optional expiry and labels, and it holds the
 * resources added to it (blobs, ingests, snapshots) against garbage collection until it is deleted or
 * expires. Work that publishes things before anything references them (an import, a pull, an unpack, a
 * commit) runs under a lease, so a collection running meanwhile keeps what it has made so far.
 */
import { randomBytes } from 'node:crypto';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, quote } from '@strata/core';
import type { Metadata, Table } from '@strata/snapshotter';

/** What a lease can hold. */
export type LeaseResourceType = 'content' | 'ingest' | 'snapshot';

export interface LeaseResource {
  readonly type: LeaseResourceType;
  /** A digest (content), an ingest ref, or a snapshot key. */
  readonly id: string;
}

export interface Lease {
  readonly id: string;
  readonly created: Date;
  /** When collection may ignore it; undefined: never. */
  readonly expires: Date | undefined;
  readonly labels: Readonly<Record<string, string>>;
}

interface LeaseRecord {
  readonly created: number;
  readonly expires?: number;
  readonly labels: Record<string, string>;
}

/** How long a lease of work in progress lives when its process dies without deleting it (containerd's default). */
export const DEFAULT_LEASE_TTL_MS = 24 * 60 * 60 * 1000;

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const TYPES: readonly LeaseResourceType[] = ['content', 'ingest', 'snapshot'];

export class Leases {
  readonly #metadata: Metadata;
  readonly #leases: Table<LeaseRecord>;
  /** [lease, type, id] → true: a lease's resources found by prefix, without a scan. */
  readonly #resources: Table<true, [string, string, string]>;

  constructor(metadata: Metadata) {
    this.#metadata = metadata;
    this.#leases = metadata.table<LeaseRecord>('leases');
    this.#resources = metadata.table<true, [string, string, string]>('lease-resources');
  }

  /** Creates a lease. Throws ALREADY_EXISTS, INVALID_ARGUMENT (a malformed id or expiry). */
  create(options: { id?: string; expiresInMs?: number; labels?: Record<string, string> } = {}): Lease {
    const id = options.id ?? `lease-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    if (!ID.test(id)) throw new InvalidArgumentError(`lease id ${quote(id)} is not [A-Za-z0-9._:-]{1,128}`);
    const ttl = options.expiresInMs;
    if (ttl !== undefined && (!Number.isFinite(ttl) || ttl <= 0)) throw new InvalidArgumentError(`lease expiry ${ttl} is not a positive duration`);
    const now = Date.now();
    const record: LeaseRecord = { created: now, ...(ttl !== undefined ? { expires: now + ttl } : {}), labels: { ...(options.labels ?? {}) } };
    this.#metadata.transaction(() => {
      if (this.#leases.get(id) !== undefined) throw new AlreadyExistsError(`lease ${quote(id)} already exists`, { path: id });
      this.#leases.put(id, record);
    });
    return leaseOf(id, record);
  }

  /** Every lease, by id. */
  list(): Lease[] {
    this.#metadata.refresh();
    return [...this.#leases.entries()].map(({ key, value }) => leaseOf(key, value));
  }

  /** Deletes a lease (what it held is then collectable). Throws NOT_FOUND. */
  delete(id: string): void {
    this.#metadata.transaction(() => {
      if (this.#leases.get(id) === undefined) throw new NotFoundError(`lease ${quote(id)} does not exist`, { path: id });
      for (const resource of this.resources(id)) this.#resources.remove([id, resource.type, resource.id]);
      this.#leases.remove(id);
    });
  }

  /** Adds resources to a lease (in the caller's transaction, when there is one). Throws NOT_FOUND. */
  add(id: string, ...resources: LeaseResource[]): void {
    for (const r of resources) if (!TYPES.includes(r.type)) throw new InvalidArgumentError(`lease resource type ${quote(String(r.type))} is not content, ingest or snapshot`);
    this.#metadata.transaction(() => {
      if (this.#leases.get(id) === undefined) throw new NotFoundError(`lease ${quote(id)} does not exist`, { path: id });
      for (const r of resources) this.#resources.put([id, r.type, r.id], true);
    });
  }

  /** Takes resources off a lease. */
  remove(id: string, ...resources: LeaseResource[]): void {
    this.#metadata.transaction(() => {
      for (const r of resources) this.#resources.remove([id, r.type, r.id]);
    });
  }

  /** What a lease holds. */
  resources(id: string): LeaseResource[] {
    const out: LeaseResource[] = [];
    // Ids hold no control characters: every [id, …] key sorts between [id] and [id + "\u0001"].
    for (const { key } of this.#resources.entries({ start: [id] as unknown as [string, string, string], end: [`${id}\u0001`] as unknown as [string, string, string] })) {
      out.push({ type: key[1] as LeaseResourceType, id: key[2] });
    }
    return out;
  }

  /** @internal For collection: the leases alive at `now`, and the expired ones. */
  split(now: number): { alive: string[]; expired: string[] } {
    const alive: string[] = [];
    const expired: string[] = [];
    for (const { key, value } of this.#leases.entries()) (value.expires !== undefined && value.expires <= now ? expired : alive).push(key);
    return { alive, expired };
  }

  /**
   * Runs `fn` under a new lease that expires after `DEFAULT_LEASE_TTL_MS` (should this process die first)
   * and is deleted when `fn` settles.
   */
  async with<T>(fn: (lease: Lease) => Promise<T>, labels: Record<string, string> = {}): Promise<T> {
    const lease = this.create({ expiresInMs: DEFAULT_LEASE_TTL_MS, labels });
    try {
      return await fn(lease);
    } finally {
      try {
        this.delete(lease.id);
      } catch {
        // already deleted by the work itself (in the transaction that made its result reachable)
      }
    }
  }
}

function leaseOf(id: string, record: LeaseRecord): Lease {
  return { id, created: new Date(record.created), expires: record.expires === undefined ? undefined : new Date(record.expires), labels: { ...record.labels } };
}
