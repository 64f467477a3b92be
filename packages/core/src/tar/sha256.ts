/**
 * sha256 over a stream of chunks, on this thread or, for large inputs, on a worker thread so that hashing
 * (about 1 GB/s) overlaps the parsing and filesystem work of the main thread on a second core. A layer
 * written to a file is hashed as written, from the file's pages, by whichever thread has time.
 * Either way the digest is of exactly the bytes that were processed, in order.
 */
import { createHash } from 'node:crypto';
import type { MessagePort, Worker } from 'node:worker_threads';
import { FailedPreconditionError } from '../errors.js';
import { FileHasher } from '../native.js';
import { addonPath } from '../package.js';
import type { FileInsert } from './writer.js';

/** Buffers that travel between a file reader and a hashing worker, so steady state allocates nothing. */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  constructor(readonly size: number) {}

  /** Collects buffers that came back since the last call (set by the hashing side). */
  refill: () => void = () => {};

  /** A whole buffer of `size` bytes, recycled when one is free. */
  take(): Buffer {
    if (this.#free.length === 0) this.refill();
    const buffer = this.#free.pop();
    return buffer === undefined ? Buffer.allocUnsafeSlow(this.size) : Buffer.from(buffer);
  }

  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === this.size && this.#free.length < 24) this.#free.push(buffer);
  }

  /** Returns the buffer under `chunk` when it is one of ours (a whole pool buffer seen from its start). */
  giveBack(chunk: Uint8Array): void {
    if (chunk.byteOffset === 0) this.give(chunk.buffer as ArrayBuffer);
  }
}

/** A running sha256 with a byte count. */
export interface Sha256Stream {
  /** Adds a chunk; the caller may reuse its buffer once this returns. Await the result when given one (back-pressure). */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /**
   * Adds a chunk whose buffer the caller gives up: a worker-backed stream moves it to the worker instead
   * of copying it, and hands it to `pool` once hashed. Other streams behave as `update`.
   */
  consume(chunk: Uint8Array, pool: BufferPool): Promise<void> | undefined;
  /** Bytes seen so far. */
  readonly size: number;
  /** `sha256:<hex>` of everything added; call once, after the last chunk. */
  digest(): Promise<string>;
  /** Gives up: a worker-backed stream stops its thread (call when the stream will not be finished). */
  abort(): Promise<void>;
}

/** Inputs at least this large are worth a worker's start-up (about 30 ms). */
export const PARALLEL_HASH_THRESHOLD = 32 * 1024 * 1024;
/** Most bytes queued for the worker before `update` asks the caller to wait (bounds peak memory). */
const MAX_IN_FLIGHT = 16 * 1024 * 1024;

/** Streams that do their work on this thread: chunks are done with when `update` returns. */
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
  readonly #hash = createHash('sha256');

  update(chunk: Uint8Array): undefined {
    this.#hash.update(chunk);
    this.size += chunk.length;
    return undefined;
  }

  async digest(): Promise<string> {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}

/** Size of the writing worker's own output buffer: small enough to stay in its core's L2 cache. */
const WORKER_OUTPUT_SIZE = 256 * 1024;
/** Files at least this large are copied by the kernel rather than read into the output buffer. */
const KERNEL_COPY_THRESHOLD = 64 * 1024;

// Chunks arrive as [buffer, offset, length, pooled, inserts] and every buffer goes back over the same port,
// so the steady state allocates nothing. Without an fd the worker hashes the stream. With one (`writeTo`) it
// writes the stream to it and hashes the file as written through the shared `hasher` (see `FileHasher`):
// after each write it reports how many bytes the file holds, and when it has nothing to write it hashes,
// unless the other side, which hashes whenever it would otherwise wait, is at it. It also splices in host
// files: `inserts` is a flat [at, path, size, offset, ...] list, `size` bytes of each file from `offset`
// (then padding to 512 bytes) going after byte `at` of the chunk. Small pieces gather in the worker's own
// output buffer (file content read straight into it by our addon, loaded here too); a large file is copied
// by the kernel (copy_file_range), never passing through this thread. The first failure is reported and
// ends the stream.
const WORKER_SOURCE = `
const { parentPort, receiveMessageOnPort } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { createHash } = require('node:crypto');
// One stream at a time; a finished worker waits on parentPort for the next stream's start.
let port, fd, hasher, hash, addon, out;
let used = 0;
let total = 0;
let failed = false;
let closed = false;
parentPort.on('message', (start) => {
  ({ port, fd, hasher } = start);
  hash = fd === undefined ? createHash('sha256') : undefined;
  if (fd !== undefined) {
    addon ??= require(start.addonPath);
    out ??= new Uint8Array(${WORKER_OUTPUT_SIZE});
  }
  used = 0;
  total = 0;
  failed = false;
  closed = false;
  port.on('message', onMessage);
});

function publish() {
  addon.fileHasherWritten(hasher, total);
}
function emit(bytes) {
  if (fd === undefined) {
    hash.update(bytes);
    total += bytes.length;
    return;
  }
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
  total += bytes.length;
  publish();
}
function flush() {
  if (used > 0) emit(out.subarray(0, used));
  used = 0;
}
function append(bytes) {
  if (fd === undefined || bytes.length > out.length / 4) {
    if (out !== undefined) flush();
    emit(bytes);
    return;
  }
  if (used + bytes.length > out.length) flush();
  out.set(bytes, used);
  used += bytes.length;
}
function shrank(path) {
  return Object.assign(new Error('file shrank while being packed: ' + path), { code: 'FAILED_PRECONDITION', path });
}
function splice(path, size, offset) {
  if (size < ${KERNEL_COPY_THRESHOLD}) {
    // Open, read and close in one native call, into the buffer.
    if (used + size > out.length) flush();
    if (addon.readFileInto(path, out, used, size, offset) !== size) throw shrank(path);
    used += size;
  } else {
    flush();
    if (addon.copyFileTo(path, fd, size, offset) !== size) throw shrank(path);
    total += size;
    publish();
  }
  const padding = (512 - (size % 512)) % 512;
  if (used + padding > out.length) flush();
  out.fill(0, used, used + padding);
  used += padding;
}

function handle(message) {
  if (message === null) {
    closed = true;
    if (!failed) {
      try {
        if (fd !== undefined) flush();
        port.postMessage({ digest: hash === undefined ? undefined : hash.digest('hex'), total });
      } catch (error) {
        port.postMessage({ error: { message: error.message, code: error.code, syscall: error.syscall, path: error.path } });
      }
    }
    port.close();
    return;
  }
  const [buffer, offset, length, pooled, inserts] = message;
  const chunk = new Uint8Array(buffer, offset, length);
  let done = length;
  if (!failed) {
    try {
      let at = 0;
      if (inserts !== undefined) {
        for (let i = 0; i < inserts.length; i += 4) {
          append(chunk.subarray(at, inserts[i]));
          splice(inserts[i + 1], inserts[i + 2], inserts[i + 3]);
          at = inserts[i];
          done += inserts[i + 2];
        }
      }
      append(chunk.subarray(at));
    } catch (error) {
      failed = true;
      port.postMessage({ error: { message: error.message, code: error.code, syscall: error.syscall, path: error.path } });
    }
  }
  port.postMessage({ done, buffer, pooled }, [buffer]);
}

function onMessage(message) {
  handle(message);
  // Writing comes first: take what else has arrived, and hash only when there is nothing to write, a
  // turn at a time, until caught up or the other thread is at it.
  for (;;) {
    const next = receiveMessageOnPort(port);
    if (next !== undefined) handle(next.message);
    else if (closed || failed || hasher === undefined || addon.fileHasherHash(hasher, ${1024 * 1024}) <= 0) return;
  }
}
`;


interface Reply {
  error?: { message: string; code?: string; syscall?: string; path?: string };
  done?: number;
  buffer?: ArrayBuffer;
  pooled?: boolean;
  digest?: string;
  /** Bytes of the whole stream, spliced files and their padding included. */
  total?: number;
}

/** A worker's error as this side throws it: typed for what strata itself reports, Node-shaped otherwise. */
function workerError(error: NonNullable<Reply['error']>): Error {
  if (error.code === 'FAILED_PRECONDITION') return new FailedPreconditionError(error.message, { path: error.path! });
  return Object.assign(new Error(error.message), { code: error.code, syscall: error.syscall, path: error.path });
}

const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** node:worker_threads, loaded when a worker is first needed (~2 ms of start-up otherwise). */
let threadsModule: typeof import('node:worker_threads') | undefined;
const threads = () => (threadsModule ??= process.getBuiltinModule('node:worker_threads'));

/**
 * A worker whose last stream ended well, kept for the next: a thread costs 50–80 ms to start on these
 * machines, about what hashing a 60 MB layer costs, and an image build writes one layer per step. One is
 * kept, unreferenced, so it never holds the process open; a worker whose stream failed is stopped instead.
 */
let idleWorker: Worker | undefined;

function takeWorker(): Worker {
  let worker = idleWorker;
  idleWorker = undefined;
  if (worker === undefined) {
    const created = new (threads().Worker)(WORKER_SOURCE, { eval: true });
    created.on('exit', () => {
      if (idleWorker === created) idleWorker = undefined;
    });
    created.unref();
    worker = created;
  }
  return worker;
}

function giveBackWorker(worker: Worker): void {
  if (idleWorker === undefined) idleWorker = worker;
  else void worker.terminate();
}

/** Most bytes this thread hashes per turn while it waits, so that it looks at the worker's replies in between. */
const HASH_TURN = 4 * 1024 * 1024;

/**
 * Hashes on a worker thread, or (with `writeTo`) writes on one and hashes the file as written, from its
 * pages in the page cache: the digest of exactly the bytes in the file. This thread hashes too whenever it
 * would otherwise wait, so the hashing goes to whichever core has time. Replies (returned buffers, the
 * digest) come over a private port that this side drains synchronously with `receiveMessageOnPort`: the
 * parsing loop rarely yields to the event loop, so waiting for message events would starve the buffer pool.
 */
class WorkerSha256 implements Sha256Stream {
  readonly #port: MessagePort;
  readonly #worker: Worker;
  readonly #hasher: FileHasher | undefined;
  size = 0;
  #inFlight = 0;
  #digest: string | undefined;
  /** The worker has written or hashed everything and said how much (`size` is final). */
  #finished = false;
  #failure: Error | undefined;
  /** Buffers the worker has handed back, ready for the next copies. */
  readonly #spare: ArrayBuffer[] = [];
  /** Where consumed buffers go once hashed. */
  #pool: BufferPool | undefined;

  readonly #onError = (error: Error): void => {
    this.#failure = error;
  };

  readonly #onExit = (): void => {
    this.#failure ??= new Error('the layer writing thread stopped in the middle of a stream');
  };

  constructor(writeTo: { fd: number; path: string } | undefined) {
    const { MessageChannel } = threads();
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    // Never keeps the process alive by itself: every wait below is a timer, which does.
    this.#port.unref();
    if (writeTo !== undefined) this.#hasher = new FileHasher(writeTo.path);
    this.#worker = takeWorker();
    this.#worker.on('error', this.#onError).on('exit', this.#onExit);
    const start = {
      port: port2,
      fd: writeTo?.fd,
      hasher: this.#hasher?.handle,
      addonPath,
    };
    this.#worker.postMessage(start, [port2]);
  }

  /** Takes every reply that has arrived, without waiting. */
  #drain(): void {
    const { receiveMessageOnPort } = threads();
    for (let received = receiveMessageOnPort(this.#port); received; received = receiveMessageOnPort(this.#port)) {
      const reply = received.message as Reply;
      if (reply.error !== undefined) this.#failure ??= workerError(reply.error);
      if (reply.digest !== undefined) this.#digest = reply.digest;
      if (reply.total !== undefined) {
        this.size = reply.total;
        this.#finished = true;
      }
      if (reply.done !== undefined) this.#inFlight -= reply.done;
      if (reply.buffer !== undefined) {
        if (reply.pooled) this.#pool?.give(reply.buffer);
        else this.#spare.push(reply.buffer);
      }
    }
    if (this.#failure) throw this.#failure;
  }

  update(chunk: Uint8Array): Promise<void> | undefined {
    this.#drain();
    // One copy into a recycled buffer (chunks may be views the caller reuses), then moved, not copied again.
    let buffer = this.#spare.pop();
    if (buffer === undefined || buffer.byteLength < chunk.length) buffer = new ArrayBuffer(Math.max(chunk.length, 1024 * 1024));
    new Uint8Array(buffer, 0, chunk.length).set(chunk);
    this.#port.postMessage([buffer, 0, chunk.length, false], [buffer]);
    return this.#account(chunk.length);
  }

  consume(chunk: Uint8Array, pool: BufferPool): Promise<void> | undefined {
    this.#drain();
    const whole = chunk.buffer as ArrayBuffer;
    if (whole.byteLength !== pool.size) return this.update(chunk); // not a pool buffer: copy it
    this.#pool = pool;
    pool.refill = () => this.#drain();
    const length = chunk.length; // read before the move: a transferred buffer's views read as empty
    this.#port.postMessage([whole, chunk.byteOffset, length, true], [whole]);
    return this.#account(length);
  }

  /** `consume` for a pool chunk with host files to splice in (see `WritingSha256.consumeBatch`). */
  consumeBatch(chunk: Uint8Array, files: readonly FileInsert[], pool: BufferPool): Promise<void> | undefined {
    this.#drain();
    this.#pool = pool;
    pool.refill = () => this.#drain();
    const inserts: Array<number | string> = [];
    let spliced = 0;
    for (const file of files) {
      inserts.push(file.at, file.path, file.size, file.offset);
      spliced += file.size;
    }
    const whole = chunk.buffer as ArrayBuffer;
    const length = chunk.length;
    this.#port.postMessage([whole, chunk.byteOffset, length, true, inserts], [whole]);
    return this.#account(length + spliced);
  }

  /** Counts bytes handed to the worker; past the in-flight bound, the caller is asked to wait. */
  #account(length: number): Promise<void> | undefined {
    this.size += length; // spliced files' padding is counted by the worker, which reports the total at the end
    this.#inFlight += length;
    return this.#inFlight <= MAX_IN_FLIGHT ? undefined : this.#settle(MAX_IN_FLIGHT / 2);
  }

  /** Waits for the worker to get below `limit` bytes in flight, hashing in the meantime when it can. */
  async #settle(limit: number): Promise<void> {
    for (this.#drain(); this.#inFlight > limit; this.#drain()) {
      if (this.#hasher === undefined || this.#hasher.hashSome(HASH_TURN) <= 0) await pause();
    }
  }

  async digest(): Promise<string> {
    this.#port.postMessage(null);
    try {
      const hasher = this.#hasher;
      if (hasher === undefined) {
        for (this.#drain(); this.#digest === undefined; this.#drain()) await pause();
      } else {
        // Everything is written once the worker says so; until then, hash beside it.
        for (this.#drain(); !this.#finished; this.#drain()) if (hasher.hashSome(HASH_TURN) <= 0) await pause();
      }
    } catch (error) {
      await this.abort();
      throw error;
    }
    // The worker is done with this stream (it touches nothing of it after its last reply): it may serve the next.
    this.#port.close();
    this.#worker.off('error', this.#onError).off('exit', this.#onExit);
    giveBackWorker(this.#worker);
    if (this.#hasher === undefined) return `sha256:${this.#digest}`;
    try {
      return `sha256:${this.#hasher.digest()}`;
    } finally {
      this.#hasher.free();
    }
  }

  /** Stops the worker; once this resolves it writes nothing more (so a `writeTo` fd may be closed). */
  async abort(): Promise<void> {
    this.#port.close();
    await this.#worker.terminate();
    this.#hasher?.free(); // only now: the worker may have been hashing until it stopped
  }
}

/** Counts bytes and hashes nothing: for readers whose digests nobody asks for. */
class NoSha256 extends SyncStream {
  update(chunk: Uint8Array): undefined {
    this.size += chunk.length;
    return undefined;
  }

  async digest(): Promise<string> {
    throw new Error('digests were not computed for this stream');
  }
}

/** A stream that only counts bytes (`digest()` rejects). */
export function createByteCounter(): Sha256Stream {
  return new NoSha256();
}

/** A sha256 stream; `parallel` hashes on a worker thread (worth it for inputs over ~32 MiB). */
export function createSha256(parallel = false): Sha256Stream {
  return parallel ? new WorkerSha256(undefined) : new InlineSha256();
}

/** A sha256 stream that also writes what it hashes to a file, splicing in host files' contents. */
export interface WritingSha256 extends Sha256Stream {
  /**
   * Like `consume`, for a chunk of `pool` that has host files to splice in: each file's content and its
   * padding to a tar block go after byte `at` of the chunk. A file shorter than its `size` fails the
   * stream with FAILED_PRECONDITION.
   */
  consumeBatch(chunk: Uint8Array, files: readonly FileInsert[], pool: BufferPool): Promise<void> | undefined;
  /** Stops at once; when this resolves nothing more will be written, so the fd may be closed. */
  abort(): Promise<void>;
}

/**
 * Writes the stream to `fd` (from its file position; `path` names the same file) on a worker thread, and
 * hashes the file as written, from its pages: the worker when it has nothing to write, this thread
 * whenever it would otherwise wait for the worker. `digest()` resolves once everything is written and hashed, and
 * `size` is then the total (spliced files included); a failure rejects it (and every later call).
 */
export function createWritingSha256(fd: number, path: string): WritingSha256 {
  return new WorkerSha256({ fd, path });
}
