/**
 * Buffers that travel between a reader and a hashing or writing thread and back, so that steady state
 * allocates nothing (and takes no page faults) per chunk.
 */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  constructor(readonly size: number) {}

  /** Collects buffers that came back since the last call (set by the side that hands them back). */
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
