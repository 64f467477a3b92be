/**
 * Pull-based reads of exact byte counts from an async iterable of chunks, zero-copy where a read falls
 * inside one chunk. Running out early is a truncated stream, reported as LAYER_FORMAT.
 */
import { LayerFormatError } from '../errors.js';

export class ByteSource {
  readonly #source: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #offset = 0;
  #ended = false;
  /** Bytes consumed so far: the archive offset of the next read. */
  position = 0;

  readonly #seek: ((n: number) => void) | undefined;

  /** `seek`, when given, passes over bytes of the underlying source without reading them. */
  constructor(source: AsyncIterable<Uint8Array>, seek?: (n: number) => void) {
    this.#source = source[Symbol.asyncIterator]();
    this.#seek = seek;
  }

  async #fill(): Promise<boolean> {
    while (this.#offset >= this.#chunk.length) {
      if (this.#ended) return false;
      const next = await this.#source.next();
      if (next.done) {
        this.#ended = true;
        return false;
      }
      this.#chunk = next.value;
      this.#offset = 0;
    }
    return true;
  }

  /**
   * The next `n` bytes when the current chunk holds them all (nearly every header read), without the
   * promise `read` costs; undefined, having consumed nothing, otherwise.
   */
  readBuffered(n: number): Uint8Array | undefined {
    if (this.#chunk.length - this.#offset < n) return undefined;
    const out = this.#chunk.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    this.position += n;
    return out;
  }

  /** Exactly `n` bytes, or undefined when the stream ends before the first byte. Throws LAYER_FORMAT if it ends midway. */
  async read(n: number): Promise<Uint8Array | undefined> {
    if (!(await this.#fill())) return undefined;
    const buffered = this.readBuffered(n);
    if (buffered !== undefined) return buffered;
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (!(await this.#fill())) throw new LayerFormatError(`truncated stream: ${n - filled} bytes missing at offset ${this.position}`);
      const take = Math.min(n - filled, this.#chunk.length - this.#offset);
      out.set(this.#chunk.subarray(this.#offset, this.#offset + take), filled);
      filled += take;
      this.#offset += take;
      this.position += take;
    }
    return out;
  }

  /** Yields the next `n` bytes as they arrive, as views into the source's chunks. */
  async *chunks(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (!(await this.#fill())) throw new LayerFormatError(`truncated stream: ${left} bytes missing at offset ${this.position}`);
      const take = Math.min(left, this.#chunk.length - this.#offset);
      const out = this.#chunk.subarray(this.#offset, this.#offset + take);
      this.#offset += take;
      this.position += take;
      left -= take;
      yield out;
    }
  }

  /**
   * Discards the next `n` bytes: by seeking past what is not buffered yet when the source allows it (a
   * stream that ends early then shows as truncated at the next read). A promise only when it has to read
   * through the source: a skip within the chunk or by a seek is done on return.
   */
  skip(n: number): Promise<void> | undefined {
    const buffered = Math.min(n, this.#chunk.length - this.#offset);
    this.#offset += buffered;
    this.position += buffered;
    if (n === buffered) return undefined;
    if (this.#seek === undefined) return this.#discard(n - buffered);
    if (this.#ended) return undefined;
    this.#seek(n - buffered);
    this.position += n - buffered;
    return undefined;
  }

  /**
   * Discards up to `n` bytes by reading through them, never by seeking (a tar entry's padding: a stream that
   * ends inside it is then seen to end there). A promise only when it has to read.
   */
  skipUpTo(n: number): Promise<void> | undefined {
    const buffered = Math.min(n, this.#chunk.length - this.#offset);
    this.#offset += buffered;
    this.position += buffered;
    return n === buffered ? undefined : this.#discardUpTo(n - buffered);
  }

  async #discardUpTo(n: number): Promise<void> {
    for (let left = n; left > 0 && (await this.#fill()); ) {
      const take = Math.min(left, this.#chunk.length - this.#offset);
      this.#offset += take;
      this.position += take;
      left -= take;
    }
  }

  async #discard(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) {
      // discarded
    }
  }

  /** Reads to the end, returning how many bytes were left. */
  async drain(): Promise<number> {
    let count = 0;
    while (await this.#fill()) {
      count += this.#chunk.length - this.#offset;
      this.position += this.#chunk.length - this.#offset;
      this.#offset = this.#chunk.length;
    }
    return count;
  }
}
