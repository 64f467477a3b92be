/**
 * The blobs of an import before they are published: each verified against its digest as it is written
 * (sealed ingests), readable for the checks that follow, then published together with the image records in
 * one transaction, or discarded. Blobs the store already holds are held by the import's lease meanwhile.
 *
 * Ingest refs are derived from what is being imported, so an import that was killed and runs again picks up
 * its ingests where they stopped instead of writing them again.
 */
import { readFileSync, statSync } from 'node:fs';
import { LimitExceededError, NotFoundError, isAlreadyExists } from '@strata/core';
import type { ContentStore, ContentWriter, Expected, SealedBlob } from './content.js';
import type { BlobReader } from './graph.js';

export class Staging implements BlobReader {
  readonly #content: ContentStore;
  readonly #lease: string;
  readonly #sealed = new Map<string, SealedBlob>();
  /** Digests found in the store already (held by the lease). */
  readonly #existing = new Set<string>();

  constructor(content: ContentStore, lease: string) {
    this.#content = content;
    this.#lease = lease;
  }

  /**
   * Opens the ingest `ref` for a blob (skipping what a killed run of the same import wrote already: see
   * `writer.offset`). Undefined when `expected.digest` is in the store already: nothing to write.
   */
  open(ref: string, expected: Expected): ContentWriter | undefined {
    if (expected.digest !== undefined && (this.#sealed.has(expected.digest) || this.#existing.has(expected.digest))) return undefined;
    try {
      return this.#content.writer(ref, expected, { lease: this.#lease });
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      this.#existing.add(expected.digest!);
      return undefined;
    }
  }

  /** Seals a finished writer's blob (verified) into the staging. */
  async seal(writer: ContentWriter, expected: Expected = {}): Promise<{ digest: string; size: number }> {
    const sealed = await writer.seal(expected);
    if (this.#sealed.has(sealed.digest) || this.#content.hold(sealed.digest, this.#lease)) {
      sealed.discard(); // the same bytes twice in one archive, or already in the store
      if (!this.#sealed.has(sealed.digest)) this.#existing.add(sealed.digest);
    } else this.#sealed.set(sealed.digest, sealed);
    return { digest: sealed.digest, size: sealed.size };
  }

  /** Stages bytes held in memory (a small document). */
  async stageBytes(ref: string, bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const writer = this.#content.writer(ref, {}, { lease: this.#lease });
    try {
      if (writer.offset > 0) {
        writer.abort();
        return this.stageBytes(ref, bytes);
      }
      await writer.write(bytes);
    } catch (error) {
      writer.abort();
      throw error;
    }
    return this.seal(writer);
  }

  has(digest: string): boolean {
    return this.#sealed.has(digest) || this.#existing.has(digest) || this.#content.hold(digest, this.#lease);
  }

  size(digest: string): number {
    const sealed = this.#sealed.get(digest);
    if (sealed !== undefined) return sealed.size;
    return this.#content.size(digest);
  }

  readBytes(digest: string, limit: number): Buffer {
    const sealed = this.#sealed.get(digest);
    if (sealed === undefined) return this.#content.readBytes(digest, limit);
    if (sealed.size > limit) throw new LimitExceededError(`blob ${digest} is ${sealed.size} bytes, over the ${limit}-byte limit`);
    return readFileSync(sealed.file);
  }

  /** Where a staged or stored blob's bytes are. Throws NOT_FOUND. */
  path(digest: string): string {
    const sealed = this.#sealed.get(digest);
    if (sealed !== undefined) return sealed.file;
    const path = this.#content.path(digest);
    try {
      statSync(path);
    } catch {
      throw new NotFoundError(`blob ${digest} is not in the import or the store`, { path: digest });
    }
    return path;
  }

  /** Waits until every staged blob is on disk (their fsyncs run on the thread pool meanwhile). */
  async settle(): Promise<void> {
    await Promise.all([...this.#sealed.values()].map((sealed) => sealed.durable));
  }

  /**
   * Publishes the staged blobs in `keep` and discards the rest: call after `settle`, inside the transaction
   * that names the images.
   */
  publish(keep: ReadonlySet<string>): void {
    for (const [digest, sealed] of this.#sealed) {
      if (keep.has(digest)) sealed.publish();
      else sealed.discard();
    }
    this.#sealed.clear();
  }

  /** Discards every staged blob. */
  discard(): void {
    for (const sealed of this.#sealed.values()) sealed.discard();
    this.#sealed.clear();
  }
}
