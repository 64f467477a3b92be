/**
 * sha256 over a stream of chunks, on this thread or, for large inputs, on a native thread of our addon so
 * that hashing (about 1.4 GB/s) overlaps the parsing and filesystem work of the main thread on a second
 * core. A layer file is written by that thread and hashed as written, from the file's pages, by a hashing
 * thread beside it, and by this one while it would otherwise wait.
 * Either way the digest is of exactly the bytes that were processed, in order.
 */
import { statSync } from 'node:fs';
import { FailedPreconditionError } from '../errors.js';
import { FileHasher, FileHashRun, ioBuffer, LayerWriter, MemorySha256 } from '../native.js';
import type { BufferPool } from './buffer-pool.js';
import { fileShrank, type FileRange } from './file-range.js';
import { turn } from '../turns.js';

/** A running sha256 with a byte count. */
export interface Sha256Stream {
  /** Adds a chunk; the caller may reuse its buffer once this returns. Await the result when given one (back-pressure). */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /**
   * Adds a chunk whose buffer the caller gives up: a stream backed by another thread takes it instead of
   * copying it, and hands it to `pool` once done with it. Other streams behave as `update`.
   */
  consume(chunk: Uint8Array, pool: BufferPool): Promise<void> | undefined;
  /** Bytes seen so far. */
  readonly size: number;
  /** `sha256:<hex>` of everything added; call once, after the last chunk. */
  digest(): Promise<string>;
  /** Gives up: a stream backed by another thread stops it (call when the stream will not be finished). */
  abort(): Promise<void>;
}

/**
 * Inputs at least this large are hashed on another thread: below it, hashing inline (under 6 ms) costs
 * less than waiting for that thread to report its digest (a 1 ms poll).
 */
export const PARALLEL_HASH_THRESHOLD = 8 * 1024 * 1024;
/**
 * Most bytes queued for another thread before `update` asks the caller to wait. Each buffer in flight is
 * memory the process touches for the first time, a page fault per 4 KiB (5-12 us each on these VMs, where
 * a fresh process's first apply of minbase took 3,300-4,600 of them for its read buffers alone). A stream that only
 * hashes keeps up at about 1.4 GB/s, so a few MiB are enough for a reader that outruns it in a large file;
 * a writing stream counts the host files it splices in too, and its thread waits on the disk.
 */
const MAX_IN_FLIGHT = { hashing: 4 * 1024 * 1024, writing: 16 * 1024 * 1024 };

/**
 * `chunk` copied into a buffer from `spare` (buffers another thread has handed back) or a new one: `update`
 * callers may reuse their chunk, so a stream that works on another thread takes a copy.
 */
function copyIntoSpare(spare: ArrayBuffer[], chunk: Uint8Array): Uint8Array<ArrayBuffer> {
  let buffer = spare.pop();
  if (buffer === undefined || buffer.byteLength < chunk.length) buffer = ioBuffer(Math.max(chunk.length, 1024 * 1024));
  const copy = new Uint8Array(buffer, 0, chunk.length);
  copy.set(chunk);
  return copy;
}

/** Streams whose chunks are done with when `update` returns (their work is on this thread, or needs no chunks). */
abstract class SyncStream implements Sha256Stream {
  size = 0;
  abstract update(chunk: Uint8Array): undefined;
  abstract digest(): Promise<string>;

  async abort(): Promise<void> {
    // Nothing runs elsewhere.
  }

  consume(chunk: Uint8Array, pool: BufferPool): undefined {
    this.update(chunk);
    pool.giveBack(chunk);
    return undefined;
  }
}

class InlineSha256 extends SyncStream {
  readonly #hash = new MemorySha256();

  update(chunk: Uint8Array): undefined {
    this.#hash.update(chunk);
    this.size += chunk.length;
    return undefined;
  }

  async digest(): Promise<string> {
    return `sha256:${this.#hash.digest()}`;
  }
}

const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** Counts bytes and hashes nothing: for readers whose digests nobody asks for. */
class NoSha256 extends SyncStream {
  update(chunk: Uint8Array): undefined {
    this.size += chunk.length;
    return undefined;
  }

  async digest(): Promise<string> {
    throw new FailedPreconditionError('digests were not computed for this stream (it was opened without hashing)');
  }
}

/** A stream that only counts bytes (`digest()` rejects). */
export function createByteCounter(): Sha256Stream {
  return new NoSha256();
}

/**
 * A sha256 stream; `parallel` hashes on a native thread (worth it from a few MiB: see
 * `PARALLEL_HASH_THRESHOLD`), which takes the chunks as they come and hands their buffers back.
 */
export function createSha256(parallel = false): Sha256Stream {
  return parallel ? new NativeSha256() : new InlineSha256();
}

/**
 * The sha256 of a whole file, read and hashed by a native thread of its own from the first byte, while this
 * thread reads the same file for something else (a digest's parse): the hash runs at its own speed instead
 * of waiting for each chunk. Chunks passed to it, and bytes skipped (`skipped`), are only counted: a reader
 * that saw more or fewer bytes than the file held when it was opened (the file changed while read) fails
 * the digest with FAILED_PRECONDITION.
 */
export class FileSha256 extends SyncStream {
  readonly #hasher: FileHasher;
  readonly #run: FileHashRun;

  /** `path` names the file (`/proc/self/fd/<n>` for one already open), `fileSize` its length. */
  constructor(
    path: string,
    readonly fileSize: number,
  ) {
    super();
    this.#hasher = new FileHasher(path);
    try {
      this.#run = new FileHashRun(this.#hasher, fileSize);
    } catch (error) {
      this.#hasher.free();
      throw error;
    }
  }

  update(chunk: Uint8Array): undefined {
    this.size += chunk.length;
    return undefined;
  }

  /** Counts `n` bytes the reader passed over without reading them. */
  skipped(n: number): void {
    this.size += n;
  }

  async digest(): Promise<string> {
    try {
      while (!this.#run.poll()) await pause();
      if (this.size !== this.fileSize) throw new FailedPreconditionError(`the file changed while it was read: ${this.fileSize} bytes when opened, ${this.size} read`);
      this.#run.free();
      return `sha256:${this.#hasher.digest()}`;
    } finally {
      await this.abort();
    }
  }

  override async abort(): Promise<void> {
    this.#run.free(); // waits for the thread: only then may the hasher go
    this.#hasher.free();
  }
}

/**
 * The sha256 of the whole file at `path` and its size, for a check that re-hashes stored files: read and
 * hashed by a native thread of its own, the event loop free but for a 1 ms poll. A file that shrinks while
 * hashed fails with EIO; Node's errors otherwise (ENOENT…).
 */
export async function sha256OfFile(path: string): Promise<{ digest: string; size: number }> {
  const hash = new FileSha256(path, statSync(path).size);
  hash.skipped(hash.fileSize); // nothing reads the file here but the thread
  return { digest: await hash.digest(), size: hash.fileSize };
}

/** A sha256 stream that also writes what it hashes to a file, splicing in host files' contents. */
export interface WritingSha256 extends Sha256Stream {
  /**
   * Like `consume`, for a chunk of `pool` that has host files to splice in: each file's content and its
   * padding to a tar block go after byte `at` of the chunk. A file shorter than its `size` fails the
   * stream with FAILED_PRECONDITION.
   */
  consumeBatch(chunk: Uint8Array, files: readonly FileRange[], pool: BufferPool): Promise<void> | undefined;
  /** Stops at once; when this resolves nothing more will be written, so the fd may be closed. */
  abort(): Promise<void>;
}

/** Most bytes this thread hashes per turn while it waits, so that it looks at the writer's progress in between. */
const HASH_TURN = 4 * 1024 * 1024;

/** A failure of the writing thread as this side throws it: typed for what strata itself reports. */
function writerError(error: unknown): Error {
  const { code, path } = error as { code?: string; path?: string };
  return code === 'FAILED_PRECONDITION' ? fileShrank(path!) : (error as Error);
}

/**
 * Works on our addon's native thread (see `LayerWriter`). With a file, it writes the stream there and
 * hashes the file as written, read back from the page cache: the digest of exactly the bytes in the
 * file. A hashing thread follows the writing; this one hashes too whenever it would otherwise wait. Without
 * a file, the writing thread hashes each chunk as it comes.
 */
class NativeSha256 implements WritingSha256 {
  readonly #hasher: FileHasher;
  readonly #writer: LayerWriter;
  readonly #maxInFlight: number;
  size = 0;
  #inFlight = 0;
  /** Pushed chunks not yet reported written, oldest first: their buffers and what each counts in flight. */
  readonly #pushed: Array<{ buffer: ArrayBuffer; bytes: number; pool: BufferPool | undefined }> = [];
  /** The stream's size once the thread has taken all of it. */
  #written: number | undefined;
  #failure: Error | undefined;
  /** Copies of `update` chunks, back from the thread, ready for the next. */
  readonly #spare: ArrayBuffer[] = [];

  /**
   * `file`: where to write the stream (an fd open for writing, and its path for the hasher to read), and
   * whether it is on disk before `digest` resolves.
   */
  constructor(file?: { fd: number; path: string; durable: boolean }) {
    this.#maxInFlight = file ? MAX_IN_FLIGHT.writing : MAX_IN_FLIGHT.hashing;
    this.#hasher = new FileHasher(file?.path);
    try {
      this.#writer = new LayerWriter(file?.fd ?? -1, this.#hasher, file?.durable ?? false);
    } catch (error) {
      this.#hasher.free();
      throw error;
    }
  }

  /** Takes the thread's progress without waiting: written chunks' buffers go back where they came from. */
  #drain(): void {
    if (this.#failure === undefined) {
      try {
        const [written, size] = this.#writer.poll();
        for (let i = 0; i < written; i++) {
          const chunk = this.#pushed.shift()!;
          this.#inFlight -= chunk.bytes;
          if (chunk.pool) chunk.pool.give(chunk.buffer);
          else this.#spare.push(chunk.buffer);
        }
        if (size >= 0) this.#written = size;
      } catch (error) {
        this.#failure = writerError(error);
      }
    }
    if (this.#failure) throw this.#failure;
  }

  #push(chunk: Uint8Array, bytes: number, pool: BufferPool | undefined, files?: Array<number | string>): Promise<void> | undefined {
    this.#writer.push(chunk, files);
    this.#pushed.push({ buffer: chunk.buffer as ArrayBuffer, bytes, pool });
    this.size += bytes; // spliced files' padding is counted by the thread, whose total is final
    this.#inFlight += bytes;
    return this.#inFlight <= this.#maxInFlight ? undefined : this.#settle(this.#maxInFlight / 2);
  }

  update(chunk: Uint8Array): Promise<void> | undefined {
    this.#drain();
    // One copy, which the thread holds until it is written.
    return this.#push(copyIntoSpare(this.#spare, chunk), chunk.length, undefined);
  }

  consume(chunk: Uint8Array, pool: BufferPool): Promise<void> | undefined {
    this.#drain();
    if (chunk.buffer.byteLength !== pool.size) return this.update(chunk); // not a pool buffer: copy it
    pool.refill = () => this.#drain();
    return this.#push(chunk, chunk.length, pool);
  }

  consumeBatch(chunk: Uint8Array, files: readonly FileRange[], pool: BufferPool): Promise<void> | undefined {
    this.#drain();
    pool.refill = () => this.#drain();
    const inserts: Array<number | string> = [];
    let spliced = 0;
    for (const file of files) {
      inserts.push(file.at, file.path, file.size, file.offset);
      spliced += file.size;
    }
    return this.#push(chunk, chunk.length + spliced, pool, inserts);
  }

  /** Waits for the thread to get below `limit` bytes in flight, hashing in the meantime when it can. */
  async #settle(limit: number): Promise<void> {
    for (this.#drain(); this.#inFlight > limit; this.#drain()) await this.#hashOrPause();
  }

  /** While waiting for the thread: hashes a turn of what it wrote, or pauses when there is none; takes turns of the event loop either way. */
  async #hashOrPause(): Promise<void> {
    if (this.#hasher.hashSome(HASH_TURN) <= 0) return pause();
    return turn();
  }

  async digest(): Promise<string> {
    try {
      this.#writer.close();
      // Everything is written once the thread says so; until then, hash beside it.
      for (this.#drain(); this.#written === undefined; this.#drain()) await this.#hashOrPause();
      // Then catch the hash up in turns too: the hashing thread may trail the writing by tens of MiB when
      // the cores were busy, and the digest below hashes what is left in one call (30-40 ms of a pack of
      // minbase, the event loop held all along).
      for (let left = this.#hasher.hashSome(HASH_TURN); left !== 0; left = this.#hasher.hashSome(HASH_TURN)) await (left > 0 ? turn() : pause());
    } catch (error) {
      await this.abort();
      throw error;
    }
    this.#writer.free(false);
    this.size = this.#written;
    try {
      return `sha256:${this.#hasher.digest()}`;
    } finally {
      this.#hasher.free();
    }
  }

  async abort(): Promise<void> {
    this.#writer.free(true);
    this.#hasher.free(); // only now: the thread may have been hashing until it stopped
  }
}

/**
 * Writes the stream to `fd` (from its file position; `path` names the same file) on a native thread, and
 * hashes the file as written, read back from the page cache: a hashing thread beside it, and this thread whenever it would
 * otherwise wait. `digest()` resolves once everything is written and hashed (and, when `durable`, on disk),
 * and `size` is then the total (spliced files included); a failure rejects it (and every later call).
 */
export function createWritingSha256(fd: number, path: string, durable = false): WritingSha256 {
  return new NativeSha256({ fd, path, durable });
}
