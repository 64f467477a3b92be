/**
 * The content store of a root: blobs by digest under `content/blobs/sha256/<hex>`, their labels in the
 * root's database, and ingests under `content/ingest/<hash of ref>/`.
 *
 * An ingest is a blob being written under a caller-chosen ref (containerd's model): a writer reopened on the
 * same ref continues at its offset (a pull or import that died resumes), one live writer holds a ref at a
 * time (another process gets FAILED_PRECONDITION), and commit verifies the size and digest the caller
 * expects before publishing the blob by rename, so a blob in the store is always whole and always what its
 * name says. A blob that is already there costs nothing: opening or committing a writer for it says
 * ALREADY_EXISTS and the ingest goes.
 *
 * Given a lease, a writer adds its ingest to it when opened and its blob when committed (or found already
 * there), in the transaction that publishes it: collection never sees a blob of unfinished work unheld.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { closeSync, createReadStream, existsSync, fstatSync, fsync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  BufferPool,
  AlreadyExistsError,
  createSha256,
  FailedPreconditionError,
  InvalidArgumentError,
  LimitExceededError,
  NotFoundError,
  PARALLEL_HASH_THRESHOLD,
  processAlive,
  quote,
  readChunks,
  startWriteback,
  syncFile,
  writeAll,
  type ByteInput,
  type Sha256Stream,
} from '@strata/core';
import { checkLabels, matchesAny, parseFilter, updateLabels, type Metadata, type Table } from '@strata/snapshotter';
import { checkDigest, digestOf } from './documents.js';
import type { Leases } from './leases.js';

/** What the store says of a blob. */
export interface ContentInfo {
  readonly digest: string;
  readonly size: number;
  readonly created: Date;
  readonly updated: Date;
  readonly labels: Readonly<Record<string, string>>;
}

/** An ingest in progress (or left by a writer that stopped). */
export interface IngestStatus {
  readonly ref: string;
  readonly offset: number;
  /** The size the writer was told to expect, or 0. */
  readonly total: number;
  readonly expected?: string;
  readonly started: Date;
  readonly updated: Date;
  /** Whether a live process holds its writer. */
  readonly locked: boolean;
}

/** What the caller expects a blob to be. */
export interface Expected {
  readonly digest?: string;
  readonly size?: number;
}

/** Options of `ContentStore.writer` and `ingest`. */
export interface WriterOptions {
  /** The lease that holds the ingest and the blob until the work that wrote them references them. */
  readonly lease?: string;
  /** Labels of the blob once committed. */
  readonly labels?: Readonly<Record<string, string>>;
}

interface ContentRecord {
  readonly created: number;
  readonly updated: number;
  readonly labels: Record<string, string>;
}

/** A new file at `path` holding `bytes`, on disk when this resolves. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function* chunksOf(input: ByteInput): AsyncGenerator<Uint8Array> {
  // A pipe's path (which readChunks refuses, as it would wait on this thread) goes through a stream.
  if (typeof input === 'string') yield* statSync(input).isFile() ? readChunks(input) : createReadStream(input, { highWaterMark: 1024 * 1024 });
  else if (input instanceof Uint8Array) yield input;
  else yield* input as AsyncIterable<Uint8Array>;
}

/** Small blobs written and on disk, waiting to be published together (see `ContentStore.stageDocuments`). */
export interface StagedDocuments {
  /** Each document's digest and size, in the order given. */
  readonly blobs: ReadonlyArray<{ digest: string; size: number }>;
  /**
   * Publishes them all under `lease`, in the caller's transaction when there is one (so that they land
   * with what references them); one already in the store is held by the lease instead.
   */
  publish(lease?: string): void;
  /** Removes the files of those not published. */
  discard(): void;
}

/** A verified ingest waiting to be published (see `ContentWriter.seal`). */
export interface SealedBlob {
  readonly digest: string;
  readonly size: number;
  /** Its bytes, readable until published or discarded. */
  readonly file: string;
  /** Resolves once its bytes are on disk (fsync, on the thread pool); `publish` only after it. */
  readonly durable: Promise<void>;
  /** Publishes it (in the caller's transaction, when there is one); a digest already there is fine. */
  publish(): void;
  /** Deletes the ingest. */
  discard(): void;
}

/** Bytes gathered before one write and one hand-over to the hash: network chunks are small (16–64 KiB). */
const STAGE_BYTES = 1024 * 1024;

/**
 * Writeback is started behind the writing every so many bytes, so that the fsync before publishing waits
 * for the last few MiB instead of the whole blob (a 95 MB layer pulled: 44 ms of waiting otherwise).
 */
const WRITEBACK_BYTES = 8 * 1024 * 1024;

/**
 * A writer of one ingest. One live writer per ref; not for use from two places at once. Writes are gathered
 * into 1 MiB buffers, each written with one call and handed to the hash without another copy. Large blobs
 * are hashed on a native thread while this one writes (see `PARALLEL_HASH_THRESHOLD`), and made durable on
 * the thread pool, so neither holds up the reading of what comes next.
 */
export class ContentWriter {
  readonly ref: string;
  readonly #dir: string;
  readonly #store: ContentStore;
  readonly #fd: number;
  readonly #hash: Sha256Stream;
  readonly #expected: Expected;
  readonly #options: WriterOptions;
  /** Bytes in the file. */
  #offset: number;
  /** Where writeback was last started up to. */
  #writeback: number;
  /** Bytes accepted but not yet in the file: the start of `#stage`. */
  #staged = 0;
  #stage: Buffer | undefined;
  readonly #pool = new BufferPool(STAGE_BYTES);
  /** Bytes a resumed ingest held when opened, not yet fed to the hash. */
  #unhashed: number;
  #closed = false;

  /** @internal Opened by `ContentStore.writer`. */
  constructor(store: ContentStore, ref: string, dir: string, fd: number, offset: number, expected: Expected, options: WriterOptions) {
    this.#store = store;
    this.ref = ref;
    this.#dir = dir;
    this.#fd = fd;
    this.#hash = createSha256((expected.size ?? 0) >= PARALLEL_HASH_THRESHOLD);
    this.#offset = offset;
    this.#writeback = offset;
    this.#unhashed = offset;
    this.#expected = expected;
    this.#options = options;
  }

  /** Bytes written so far (where a resumed writer continues). */
  get offset(): number {
    return this.#offset + this.#staged;
  }

  #live(): void {
    if (this.#closed) throw new FailedPreconditionError(`writer for ${quote(this.ref)} is closed`);
  }

  /** Feeds what a resumed ingest held to the hash, read back once. */
  async #hashPrefix(): Promise<void> {
    if (this.#unhashed === 0) return;
    const size = this.#unhashed;
    this.#unhashed = 0;
    const buffer = Buffer.allocUnsafe(Math.min(size, 1024 * 1024));
    for (let at = 0; at < size; ) {
      const n = readSync(this.#fd, buffer, 0, Math.min(buffer.length, size - at), at);
      if (n === 0) break;
      await this.#hash.update(buffer.subarray(0, n));
      at += n;
    }
  }

  /** Appends `chunk`. Past the expected size the data is wrong: FAILED_PRECONDITION, and the ingest goes. */
  async write(chunk: Uint8Array): Promise<void> {
    const wait = this.append(chunk);
    if (wait) await wait;
  }

  /**
   * `write` without a turn of the event loop when none is needed: copies `chunk` (its buffer is free again
   * on return) and returns a promise only when the caller must wait before the next (the hash is behind).
   */
  append(chunk: Uint8Array): Promise<void> | undefined {
    this.#live();
    const total = this.#expected.size;
    if (total !== undefined && this.offset + chunk.length > total) {
      this.abort();
      throw new FailedPreconditionError(`${quote(this.ref)}: more than the ${total} bytes expected`);
    }
    if (this.#unhashed > 0) {
      const copy = Buffer.from(chunk);
      return this.#hashPrefix().then(() => this.append(copy));
    }
    for (let at = 0; at < chunk.length; ) {
      this.#stage ??= this.#pool.take();
      const n = Math.min(chunk.length - at, this.#stage.length - this.#staged);
      this.#stage.set(chunk.subarray(at, at + n), this.#staged);
      this.#staged += n;
      at += n;
      if (this.#staged === this.#stage.length) {
        const wait = this.#flush();
        if (wait && at < chunk.length) {
          const rest = Buffer.from(chunk.subarray(at));
          return wait.then(() => this.append(rest));
        }
        if (wait) return wait;
      }
    }
    return undefined;
  }

  /** Writes what is staged to the file, then hands its buffer to the hash (which returns it to the pool). */
  #flush(): Promise<void> | undefined {
    const stage = this.#stage;
    if (stage === undefined || this.#staged === 0) return undefined;
    const data = stage.subarray(0, this.#staged);
    this.#writeStaged(data);
    this.#stage = undefined;
    return this.#hash.consume(data, this.#pool);
  }

  #writeStaged(data: Uint8Array): void {
    writeAll(this.#fd, data, this.#offset);
    this.#offset += data.length;
    this.#staged = 0;
    if (this.#offset - this.#writeback >= WRITEBACK_BYTES) {
      startWriteback(this.#fd, this.#writeback, this.#offset - this.#writeback);
      this.#writeback = this.#offset;
    }
  }

  /** Appends everything `source` yields. */
  async writeAll(source: ByteInput): Promise<void> {
    for await (const chunk of chunksOf(source)) await this.write(chunk);
  }

  /**
   * Verifies the blob without publishing it: its size and digest must be what the writer was opened with
   * (and `expected`, when given), else FAILED_PRECONDITION. A short blob stays resumable (reopen the writer);
   * a long or wrong one is deleted. The sealed ingest keeps its ref until published or discarded, so an
   * import can verify everything first and publish it all in one transaction (or nothing).
   */
  async seal(expected: Expected = {}): Promise<SealedBlob> {
    this.#live();
    await this.#flush();
    const want: Expected = { ...this.#expected, ...expected };
    if (want.size !== undefined && this.#offset < want.size) {
      this.close();
      throw new FailedPreconditionError(`${quote(this.ref)}: ${this.#offset} of ${want.size} bytes written; reopen the writer to resume`);
    }
    if (want.size !== undefined && this.#offset !== want.size) {
      this.abort();
      throw new FailedPreconditionError(`${quote(this.ref)}: ${this.#offset} bytes, expected ${want.size}`);
    }
    await this.#hashPrefix();
    const digest = await this.#hash.digest();
    if (want.digest !== undefined && digest !== want.digest) {
      this.abort();
      throw new FailedPreconditionError(`${quote(this.ref)}: content is ${digest}, expected ${want.digest}`);
    }
    this.#closed = true;
    const fd = this.#fd;
    const durable = new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve()))).finally(() => closeSync(fd));
    durable.catch(() => {}); // awaited by whoever publishes; a failure there is theirs to report
    const dir = this.#dir;
    const ref = this.ref;
    const store = this.#store;
    const options = this.#options;
    let settled = false;
    return {
      digest,
      size: this.#offset,
      file: join(dir, 'data'),
      durable,
      publish() {
        if (settled) throw new FailedPreconditionError(`${digest} was already published or discarded`);
        settled = true;
        try {
          store.publish(join(dir, 'data'), digest, options, ref);
        } catch (error) {
          if (!isAlreadyExists(error)) {
            settled = false;
            throw error;
          }
        }
        rmSync(dir, { recursive: true, force: true });
      },
      discard() {
        settled = true;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  /**
   * Verifies and publishes the blob (see `seal`): nothing is published unless everything matched. A digest
   * already in the store is ALREADY_EXISTS (and the ingest goes). Returns the digest and size.
   */
  async commit(expected: Expected = {}): Promise<{ digest: string; size: number }> {
    const sealed = await this.seal(expected);
    try {
      await sealed.durable;
      this.#store.publish(sealed.file, sealed.digest, this.#options, this.ref);
    } finally {
      sealed.discard();
    }
    return { digest: sealed.digest, size: sealed.size };
  }

  /** Stops writing, keeping the ingest to resume later; releases the ref. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#stage !== undefined && this.#staged > 0) this.#writeStaged(this.#stage.subarray(0, this.#staged)); // kept to resume
    this.#stage = undefined;
    void this.#hash.abort();
    closeSync(this.#fd);
    rmSync(join(this.#dir, 'lock'), { force: true });
  }

  /** Stops writing and deletes the ingest. */
  abort(): void {
    if (!this.#closed) {
      this.#closed = true;
      void this.#hash.abort();
      closeSync(this.#fd);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

export class ContentStore {
  readonly #blobs: string;
  readonly #ingests: string;
  readonly #records: Table<ContentRecord>;
  readonly #metadata: Metadata;
  readonly #leases: Leases;

  constructor(root: string, metadata: Metadata, leases: Leases) {
    this.#blobs = join(root, 'content', 'blobs', 'sha256');
    this.#ingests = join(root, 'content', 'ingest');
    mkdirSync(this.#blobs, { recursive: true, mode: 0o700 });
    mkdirSync(this.#ingests, { recursive: true, mode: 0o700 });
    this.#metadata = metadata;
    this.#leases = leases;
    this.#records = metadata.table<ContentRecord>('content');
  }

  /** Where the blob `digest` lives (whether or not it is there). */
  path(digest: string): string {
    return join(this.#blobs, checkDigest(digest, 'content').slice('sha256:'.length));
  }

  /** Whether the store holds `digest`. */
  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  /**
   * Whether the store holds `digest`; when it does and a lease is given, the lease now holds it too (in one
   * transaction, so a collection cannot take it in between).
   */
  hold(digest: string, lease: string | undefined): boolean {
    if (lease === undefined) return this.has(digest);
    return this.#metadata.transaction(() => {
      if (!this.has(digest)) return false;
      this.#leases.add(lease, { type: 'content', id: digest });
      return true;
    });
  }

  /** What the store says of `digest`. Throws NOT_FOUND. */
  info(digest: string): ContentInfo {
    const path = this.path(digest);
    let size: number;
    let mtime: number;
    try {
      const st = statSync(path);
      size = st.size;
      mtime = st.mtimeMs;
    } catch {
      throw new NotFoundError(`content ${digest} is not in the store`, { path: digest });
    }
    const record = this.#records.get(digest);
    return {
      digest,
      size,
      created: new Date(record?.created ?? mtime),
      updated: new Date(record?.updated ?? mtime),
      labels: { ...(record?.labels ?? {}) },
    };
  }

  /** Bytes of the blob `digest`. Throws NOT_FOUND. */
  size(digest: string): number {
    try {
      return statSync(this.path(digest)).size;
    } catch {
      throw new NotFoundError(`content ${digest} is not in the store`, { path: digest });
    }
  }

  /** The blob's bytes, whole or a range `[start, end)`. Throws NOT_FOUND. */
  read(digest: string, range: { start?: number; end?: number } = {}): Readable {
    const path = this.path(digest);
    if (!existsSync(path)) throw new NotFoundError(`content ${digest} is not in the store`, { path: digest });
    const options: { start?: number; end?: number; highWaterMark: number } = { highWaterMark: 1024 * 1024 };
    if (range.start !== undefined) options.start = range.start;
    if (range.end !== undefined) options.end = range.end - 1;
    return createReadStream(path, options);
  }

  /** A small blob (a manifest, an index, a config) whole; LIMIT_EXCEEDED past `limit`. Throws NOT_FOUND. */
  readBytes(digest: string, limit: number): Buffer {
    const size = this.size(digest);
    if (size > limit) throw new LimitExceededError(`content ${digest} is ${size} bytes, over the ${limit}-byte limit`);
    return readFileSync(this.path(digest));
  }

  /** Removes a blob and its labels. Throws NOT_FOUND. */
  delete(digest: string): void {
    const path = this.path(digest);
    this.#metadata.transaction(() => {
      if (!existsSync(path)) throw new NotFoundError(`content ${digest} is not in the store`, { path: digest });
      unlinkSync(path);
      this.#records.remove(digest);
    });
  }

  /** Sets labels as snapshots' `update` does (no field paths or `labels`: replace all; `labels.<k>`: set or remove one). */
  update(digest: string, labels: Readonly<Record<string, string>>, fieldpaths: readonly string[] = []): ContentInfo {
    return this.#metadata.transaction(() => {
      const info = this.info(digest);
      const next = checkLabels(updateLabels(info.labels, checkLabels(labels), fieldpaths));
      this.#records.put(digest, { created: info.created.getTime(), updated: Date.now(), labels: next });
      return this.info(digest);
    });
  }

  /** Every blob's digest, in digest order. */
  digests(): string[] {
    return readdirSync(this.#blobs)
      .filter((name) => /^[0-9a-f]{64}$/.test(name))
      .sort()
      .map((name) => `sha256:${name}`);
  }

  /** Every blob matching any of `filters` (`digest==…`, `labels.k==v`, `labels.k`), in digest order. */
  walk(...filters: string[]): ContentInfo[] {
    const parsed = filters.map(parseFilter);
    const out: ContentInfo[] = [];
    for (const digest of this.digests()) {
      let info: ContentInfo;
      try {
        info = this.info(digest);
      } catch {
        continue; // deleted meanwhile
      }
      const lookup = (path: readonly string[]) => (path[0] === 'digest' && path.length === 1 ? digest : path[0] === 'labels' && path.length === 2 ? info.labels[path[1]!] : undefined);
      if (matchesAny(parsed, lookup)) out.push(info);
    }
    return out;
  }

  #ingestDir(ref: string): string {
    return join(this.#ingests, createHash('sha256').update(ref).digest('hex'));
  }

  /**
   * Opens the ingest `ref` for writing: a new one, or the one a writer left (continuing at its offset).
   * Throws ALREADY_EXISTS when `expected.digest` is in the store already (nothing to write; the lease, if
   * any, now holds it), FAILED_PRECONDITION when a live writer holds `ref`.
   */
  writer(ref: string, expected: Expected = {}, options: WriterOptions = {}): ContentWriter {
    if (typeof ref !== 'string' || ref === '' || ref.length > 1024) throw new InvalidArgumentError('an ingest ref is a non-empty string of at most 1024 characters');
    if (expected.digest !== undefined) checkDigest(expected.digest, `ingest ${quote(ref)}`);
    if (expected.size !== undefined && (!Number.isSafeInteger(expected.size) || expected.size < 0)) throw new InvalidArgumentError(`expected size ${expected.size} is not a byte count`);
    if (expected.digest !== undefined && this.hold(expected.digest, options.lease)) {
      if (!this.ingestLocked(ref)) rmSync(this.#ingestDir(ref), { recursive: true, force: true });
      throw new AlreadyExistsError(`content ${expected.digest} is in the store already`, { path: expected.digest });
    }
    const dir = this.#ingestDir(ref);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#lock(dir, ref);
    try {
      writeFileSync(join(dir, 'ref'), ref);
      const meta = join(dir, 'expected');
      if (existsSync(meta)) {
        const before = readExpected(meta);
        const other = (a: unknown, b: unknown) => a !== undefined && b !== undefined && a !== b;
        // The same ref for another blob, or a record cut short by a crash: what was written may not be a prefix of it.
        if (before === undefined || other(before.digest, expected.digest) || other(before.size, expected.size)) rmSync(join(dir, 'data'), { force: true });
      }
      writeFileSync(meta, JSON.stringify({ ...expected, started: Date.now() }));
      const fd = openSync(join(dir, 'data'), 'a+');
      const size = fstatSync(fd).size; // resuming: the writer hashes what is there once, before writing on
      try {
        if (options.lease !== undefined) this.#leases.add(options.lease, { type: 'ingest', id: ref });
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      return new ContentWriter(this, ref, dir, fd, size, expected, options);
    } catch (error) {
      rmSync(join(dir, 'lock'), { force: true });
      throw error;
    }
  }

  #lock(dir: string, ref: string): void {
    const lock = join(dir, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(lock, String(process.pid), { flag: 'wx' });
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number(readFileSync(lock, 'utf8'));
        if (holder === process.pid) throw new FailedPreconditionError(`ingest ${quote(ref)} has a live writer in this process`);
        if (processAlive(holder)) throw new FailedPreconditionError(`ingest ${quote(ref)} is being written by process ${holder}`);
        rmSync(lock, { force: true }); // its process is gone
      }
    }
    throw new FailedPreconditionError(`ingest ${quote(ref)} could not be locked`);
  }

  /** Ingests in progress, or left by writers that stopped (resumable). */
  ingests(): IngestStatus[] {
    const out: IngestStatus[] = [];
    for (const name of readdirSync(this.#ingests)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const dir = join(this.#ingests, name);
      try {
        const ref = readFileSync(join(dir, 'ref'), 'utf8');
        const meta = readExpected(join(dir, 'expected')) ?? {};
        const st = statSync(join(dir, 'data'));
        out.push({
          ref,
          offset: st.size,
          total: meta.size ?? 0,
          ...(meta.digest ? { expected: meta.digest } : {}),
          started: typeof meta.started === 'number' ? new Date(meta.started) : st.mtime,
          updated: st.mtime,
          locked: this.ingestLocked(ref),
        });
      } catch {
        // being created or removed right now
      }
    }
    return out;
  }

  /** Whether the ingest `ref` has a live writer. */
  ingestLocked(ref: string): boolean {
    try {
      return processAlive(Number(readFileSync(join(this.#ingestDir(ref), 'lock'), 'utf8')));
    } catch {
      return false;
    }
  }

  /** Deletes the ingest `ref` (unless a live writer holds it: FAILED_PRECONDITION). */
  abortIngest(ref: string): void {
    if (this.ingestLocked(ref)) throw new FailedPreconditionError(`ingest ${quote(ref)} has a live writer`);
    rmSync(this.#ingestDir(ref), { recursive: true, force: true });
  }

  /**
   * Writes `source` as one blob and commits it, under a random ref. Returns the digest and size; a blob
   * already there is not an error here (it is there, as asked, and held by the lease).
   */
  async ingest(source: ByteInput, expected: Expected = {}, options: WriterOptions = {}): Promise<{ digest: string; size: number }> {
    let writer: ContentWriter;
    try {
      writer = this.writer(`ingest-${process.pid}-${randomBytes(8).toString('hex')}`, expected, options);
    } catch (error) {
      if (isAlreadyExists(error)) return { digest: expected.digest!, size: this.info(expected.digest!).size };
      throw error;
    }
    try {
      await writer.writeAll(source);
      return await writer.commit();
    } catch (error) {
      writer.abort();
      if (isAlreadyExists(error)) return this.#existing(error);
      throw error;
    }
  }

  #existing(error: unknown): { digest: string; size: number } {
    const digest = (error as AlreadyExistsError).path!;
    return { digest, size: this.info(digest).size };
  }

  /**
   * Small blobs held in memory (a config and its manifest): each written to a file of its own and synced,
   * all at once on the thread pool, then published together by the caller (see `StagedDocuments`). What
   * an ingest costs in transactions and directories, a commit's documents are spared: one transaction for
   * the documents and the name that points at them.
   */
  async stageDocuments(documents: readonly Uint8Array[]): Promise<StagedDocuments> {
    const blobs = documents.map((bytes) => ({ digest: digestOf(bytes), size: bytes.length }));
    const files = documents.map(() => this.temporaryPath());
    const written = await Promise.allSettled(documents.map((bytes, i) => writeDurably(files[i]!, bytes)));
    const failed = written.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      for (const file of files) rmSync(file, { force: true });
      throw failed.reason;
    }
    let pending = true;
    return {
      blobs,
      publish: (lease) => {
        if (!pending) throw new FailedPreconditionError('the documents were already published or discarded');
        this.#metadata.transaction(() => {
          for (const [i, { digest }] of blobs.entries()) {
            try {
              this.publish(files[i]!, digest, lease !== undefined ? { lease } : {});
            } catch (error) {
              if (!isAlreadyExists(error)) throw error;
              rmSync(files[i]!, { force: true }); // there already, and now held by the lease
            }
          }
        });
        pending = false;
      },
      discard: () => {
        if (pending) for (const file of files) rmSync(file, { force: true });
        pending = false;
      },
    };
  }

  /**
   * A path for a file to be made and then adopted (a layer written by commit or squash): in the store's
   * file system, so adopting it is a rename; left by a dead process, collection removes it.
   */
  temporaryPath(): string {
    return join(this.#ingests, `tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Publishes a file whose digest the caller computed while writing it (see `temporaryPath`), once its
   * bytes are on disk: a crash must not leave a record of a blob that was only in the page cache. That wait
   * is short for a file written `durable` (core's layer writers), whose writeback started as it was
   * written. A digest already in the store is fine: the file goes and the lease holds the blob that is there.
   */
  async adopt(file: string, digest: string, options: WriterOptions = {}): Promise<void> {
    try {
      await syncFile(file);
      this.publish(file, digest, options);
    } catch (error) {
      rmSync(file, { force: true });
      if (!isAlreadyExists(error)) throw error;
    }
  }

  /**
   * @internal Moves a verified file into place as `digest`: ALREADY_EXISTS when it is there. The lease, if
   * any, now holds the blob instead of the ingest `ref` it came from.
   */
  publish(file: string, digest: string, options: WriterOptions, ref?: string): void {
    const target = this.path(digest);
    const exists = this.#metadata.transaction(() => {
      if (options.lease !== undefined) {
        this.#leases.add(options.lease, { type: 'content', id: digest });
        if (ref !== undefined) this.#leases.remove(options.lease, { type: 'ingest', id: ref });
      }
      if (existsSync(target)) return true;
      renameSync(file, target);
      const now = Date.now();
      this.#records.put(digest, { created: now, updated: now, labels: { ...(options.labels ?? {}) } });
      return false;
    });
    if (exists) throw new AlreadyExistsError(`content ${digest} is in the store already`, { path: digest });
  }

  /** @internal For collection: the ingest directories and temporary files, with what decides their fate. */
  leftovers(): { path: string; ref?: string; pid?: number; locked: boolean; mtimeMs: number }[] {
    const out: { path: string; ref?: string; pid?: number; locked: boolean; mtimeMs: number }[] = [];
    for (const name of readdirSync(this.#ingests)) {
      const path = join(this.#ingests, name);
      let mtimeMs = 0;
      try {
        mtimeMs = statSync(path).mtimeMs;
      } catch {
        continue;
      }
      const temp = /^tmp-(\d+)-[0-9a-f]+$/.exec(name);
      if (temp) {
        out.push({ path, pid: Number(temp[1]), locked: processAlive(Number(temp[1])), mtimeMs });
        continue;
      }
      let ref: string | undefined;
      try {
        ref = readFileSync(join(path, 'ref'), 'utf8');
      } catch {
        // being created (or half removed): judged by its age alone
      }
      out.push({ path, ...(ref !== undefined ? { ref } : {}), locked: ref !== undefined && this.ingestLocked(ref), mtimeMs });
    }
    return out;
  }

  /** @internal For collection, inside its transaction: removes a blob and its record; false when it was gone. */
  sweep(digest: string): boolean {
    try {
      unlinkSync(this.path(digest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // the blob stays, and so do its labels
      this.#records.remove(digest);
      return false;
    }
    this.#records.remove(digest);
    return true;
  }
}

function isAlreadyExists(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === 'ALREADY_EXISTS';
}

/** An ingest's record of what it expects, or undefined when a crash cut it short (written in place, not renamed). */
function readExpected(path: string): (Expected & { started?: number }) | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Expected & { started?: number }) : undefined;
  } catch {
    return undefined;
  }
}
