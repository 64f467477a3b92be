/**
 * Buffers that travel between a reader and a hashing or writing thread and back, so that steady state
 * allocates nothing (and takes no page faults) per chunk. They are the addon's (`ioBuffer`): present when
 * made, and not write-protected by the forks that start child processes, which made every reused page
 * fault again after a builder or the benchmark ran a command.
 */
import { ioBuffer } from '../native.js';

/**
 * Free buffers of pools that finished, by size, for the next pool: a process handling layer after layer (a
 * pull, an import, a build) reads and writes into memory it has touched before. Fresh memory costs a
 * mapping and a zeroing, and before buffers were populated when made, a page fault per 4 KiB (5-12 µs each
 * on these VMs: a second apply of minbase in a fresh process took about 1,500 of them for its read buffers).
 * Capped, and let go once no pool has finished for a while.
 */
const reserve = new Map<number, ArrayBuffer[]>();
const RESERVE_BYTES = 16 * 1024 * 1024;
/** How long the reserve outlives the last pool that finished. */
const RESERVE_IDLE_MS = 5000;
let reserved = 0;
let idle: NodeJS.Timeout | undefined;

function fromReserve(size: number): ArrayBuffer | undefined {
  const buffer = reserve.get(size)?.pop();
  if (buffer !== undefined) reserved -= size;
  return buffer;
}

function toReserve(buffers: ArrayBuffer[], size: number): void {
  let kept = reserve.get(size);
  if (kept === undefined) reserve.set(size, (kept = []));
  while (buffers.length > 0 && reserved + size <= RESERVE_BYTES) {
    kept.push(buffers.pop()!);
    reserved += size;
  }
  if (idle !== undefined) clearTimeout(idle);
  idle = setTimeout(dropReserve, RESERVE_IDLE_MS).unref();
}

/** Bytes the reserve holds (for tests and diagnostics). */
export function reservedBytes(): number {
  return reserved;
}

/** Lets go of the reserve (the garbage collector frees it). */
export function dropReserve(): void {
  reserve.clear();
  reserved = 0;
  if (idle !== undefined) clearTimeout(idle);
  idle = undefined;
}

export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  constructor(readonly size: number) {}

  /** Collects buffers that came back since the last call (set by the side that hands them back). */
  refill: () => void = () => {};

  /** A whole buffer of `size` bytes, recycled when one is free. */
  take(): Buffer {
    if (this.#free.length === 0) this.refill();
    const buffer = this.#free.pop() ?? fromReserve(this.size);
    return Buffer.from(buffer ?? ioBuffer(this.size));
  }

  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === this.size && this.#free.length < 24) this.#free.push(buffer);
  }

  /** Returns the buffer under `chunk` when it is one of ours (a whole pool buffer seen from its start). */
  giveBack(chunk: Uint8Array): void {
    if (chunk.byteOffset === 0) this.give(chunk.buffer as ArrayBuffer);
  }

  /**
   * Hands the free buffers to the next pool of this size: call once the pool's work is over and nothing
   * reads or writes its buffers any more (those still out are left to the garbage collector).
   */
  retire(): void {
    this.refill = () => {}; // the side handing buffers back may be gone (a stream's thread, freed)
    toReserve(this.#free, this.size);
    this.#free.length = 0;
  }
}
