/**
 * gzip compressed on every core, as pigz does: the input is cut into fixed blocks, each raw-deflated on
 * libuv's thread pool with the 32 KiB before it as its dictionary and ended by a sync flush (which leaves it
 * byte-aligned and not final), so the pieces, in order, make one deflate stream; the last block finishes
 * it. A single zlib stream uses one core, and compression is most of the cost of writing a gzip layer.
 *
 * The bytes depend only on the input, the level and the block size, never on how the input was chunked or
 * which block finished first, so layers stay reproducible. The dictionary keeps the ratio within a
 * fraction of a percent of one stream's.
 */
import type { Transform } from 'node:stream';
import { stream, zlib } from '../builtins.js';
import type * as Zlib from 'node:zlib';

/** Input per block: large enough that a block's thread-pool round trip is noise, small enough to spread. */
const BLOCK = 256 * 1024;
/** Deflate's window: what a block may refer back to in the block before it. */
const WINDOW = 32 * 1024;
/** Blocks compressing at once: a few per core keeps them busy without holding much input. */
const IN_FLIGHT = 4;

/** The gzip member header: no name, no mtime (reproducible), XFL from the level, OS Unix. */
function header(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

/**
 * A gzip compressor as a Transform stream that compresses on every core. A function, not a subclass of
 * Transform, so that node:stream loads when a compressed blob is first written, not with strata.
 */
export function parallelGzip(level = 6): Transform {
  const deflate = new BlockDeflate(level, (bytes) => transform.push(bytes));
  const transform: Transform = new (stream().Transform)({
    transform(chunk: Buffer, _encoding, callback) {
      deflate.write(chunk).then(() => callback(), callback);
    },
    flush(callback) {
      deflate.end().then((trailer) => callback(null, trailer), callback);
    },
  });
  return transform;
}

/** The blocks, their compressions in flight and the checksum of one gzip member; output goes to `push`. */
class BlockDeflate {
  readonly #level: number;
  readonly #push: (bytes: Buffer) => void;
  /** Input not yet cut into a block. */
  #pieces: Buffer[] = [];
  #held = 0;
  /** The block before the next one: its end is the next block's dictionary. */
  #previous: Buffer | undefined;
  /** Compressions started, oldest first; their output goes out in this order. */
  readonly #running: Array<Promise<Buffer>> = [];
  #crc = 0;
  #size = 0;
  #started = false;

  constructor(level: number, push: (bytes: Buffer) => void) {
    this.#level = level;
    this.#push = push;
  }

  /** Takes `chunk` in, compressing every whole block held (waiting whenever too many compress). */
  write(chunk: Buffer): Promise<void> {
    this.#pieces.push(chunk);
    this.#held += chunk.length;
    return this.#cutBlocks();
  }

  /** Compresses the rest as the last block and sends everything out: the member's trailer. */
  async end(): Promise<Buffer> {
    const rest = this.#take(this.#held);
    this.#start(rest, true);
    await this.#drain(0);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.#crc >>> 0, 0);
    trailer.writeUInt32LE(this.#size % 2 ** 32, 4);
    return trailer;
  }

  /** Starts a compression per whole block held, waiting whenever too many run. */
  async #cutBlocks(): Promise<void> {
    while (this.#held >= BLOCK) {
      this.#start(this.#take(BLOCK), false);
      await this.#drain(IN_FLIGHT - 1);
    }
  }

  /** The first `length` bytes held, as one buffer. */
  #take(length: number): Buffer {
    const block = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const piece = this.#pieces[0]!;
      const used = Math.min(piece.length, length - filled);
      piece.copy(block, filled, 0, used);
      filled += used;
      if (used === piece.length) this.#pieces.shift();
      else this.#pieces[0] = piece.subarray(used);
    }
    this.#held -= length;
    return block;
  }

  #start(block: Buffer, last: boolean): void {
    if (!this.#started) {
      this.#started = true;
      this.#push(header(this.#level));
    }
    const z = zlib();
    this.#crc = z.crc32(block, this.#crc);
    this.#size += block.length;
    const options: Zlib.ZlibOptions = { level: this.#level, finishFlush: last ? z.constants.Z_FINISH : z.constants.Z_SYNC_FLUSH };
    if (this.#previous !== undefined) options.dictionary = this.#previous.subarray(Math.max(0, this.#previous.length - WINDOW));
    this.#previous = block;
    const compressed = new Promise<Buffer>((resolve, reject) => z.deflateRaw(block, options, (error, out) => (error ? reject(error) : resolve(out))));
    compressed.catch(() => {}); // awaited in order by #drain; one failing while another is awaited is not unhandled
    this.#running.push(compressed);
  }

  /** Sends on finished output, oldest first, until at most `left` compressions run. */
  async #drain(left: number): Promise<void> {
    while (this.#running.length > left) this.#push(await this.#running.shift()!);
  }
}
