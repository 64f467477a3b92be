/**
 * Layer compression: detected by magic bytes on read, chosen by the caller on write. gzip is read with
 * ISA-L where it is installed, else node:zlib, and written by node:zlib (on every core by ParallelGzip);
 * zstd from zstd-napi (libzstd's streaming API; Node 20 has no zstd of its own).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Readable, type Transform } from 'node:stream';
import { LayerFormatError, UnsupportedError } from '../errors.js';
import { Inflater } from '../native.js';
import { BufferPool } from './buffer-pool.js';
import { requireFromPackage } from '../package.js';
import { ParallelGzip } from './parallel-gzip.js';

type ZstdNapi = typeof import('zstd-napi');
let zstdModule: ZstdNapi | undefined;

/** node:zlib, loaded on first use (~3 ms of start-up otherwise). */
let zlibModule: typeof import('node:zlib') | undefined;
const zlib = () => (zlibModule ??= process.getBuiltinModule('node:zlib'));

/** zstd-napi, loaded on first use: most commands never touch zstd, and loading it costs ~10 ms of start-up. */
function zstd(): ZstdNapi {
  zstdModule ??= requireFromPackage('zstd-napi') as ZstdNapi;
  return zstdModule;
}

/** The compressions strata reads and writes. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** Identifies the compression of a layer from its first bytes (at least 6 for certainty). */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) {
    throw new UnsupportedError('xz-compressed layers are not supported (OCI layers are gzip or zstd)');
  }
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) {
    throw new UnsupportedError('bzip2-compressed layers are not supported (OCI layers are gzip or zstd)');
  }
  return 'none';
}

/** The compression of the layer file at `path`, from its first bytes. */
export function detectFileCompression(path: string): Compression {
  const head = new Uint8Array(6);
  const fd = openSync(path, 'r');
  try {
    return detectCompression(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
  } finally {
    closeSync(fd);
  }
}

/** Turns compressed chunks into uncompressed ones, pulled as the consumer asks for them. */
export type Decompress = (compressed: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>;

/** Size of the chunks decompressors produce. */
const OUTPUT_CHUNK = 256 * 1024;

/** gzip through node:zlib, which works on the thread pool and waits for its reader (back-pressure). */
const zlibGunzip: Decompress = (compressed) => {
  const from = Readable.from(compressed, { objectMode: false });
  const transform = zlib().createGunzip({ chunkSize: OUTPUT_CHUNK });
  from.on('error', (error) => transform.destroy(error));
  return from.pipe(transform);
};

/** Output chunks of ISA-L's inflate: each is a thread-pool round trip, so larger than zlib's. */
const ISAL_OUTPUT_CHUNK = 1024 * 1024;

/**
 * gzip through ISA-L: one chunk inflated ahead on the thread pool while the consumer works on the last, so
 * inflating and applying overlap; memory stays two output chunks whatever the ratio.
 */
async function* isalGunzip(compressed: AsyncIterable<Uint8Array>, inflater: Inflater, outputs: BufferPool): AsyncGenerator<Uint8Array> {
  const source = compressed[Symbol.asyncIterator]();
  let input: Uint8Array = new Uint8Array(0);
  let sourceDone = false;
  let ended = false;
  // The next output chunk, full unless the stream ends, or null after its end. An input chunk stays valid
  // until the source is asked for the next, which happens only once it is used up.
  const produce = async (): Promise<Uint8Array | null> => {
    const output = outputs.take();
    let filled = 0;
    for (;;) {
      if (input.length === 0) {
        if (sourceDone) {
          if (!ended) throw new LayerFormatError('corrupt gzip stream: unexpected end of file');
          return filled > 0 ? output.subarray(0, filled) : null;
        }
        const next = await source.next();
        if (next.done) sourceDone = true;
        else input = next.value;
        continue;
      }
      const [consumed, produced, streamEnded] = await inflater.run(input, output.subarray(filled));
      if (consumed === 0 && produced === 0) throw new LayerFormatError('corrupt gzip stream: the decoder made no progress');
      input = input.subarray(consumed);
      ended = streamEnded;
      filled += produced;
      if (filled === output.length) return output;
    }
  };
  let ahead = produce();
  ahead.catch(() => undefined); // awaited below; only marks it handled while the consumer works
  try {
    for (;;) {
      const chunk = await ahead;
      if (chunk === null) return;
      ahead = produce();
      ahead.catch(() => undefined);
      yield chunk;
    }
  } finally {
    // The consumer stopped early, or an error ended it: let the call in flight finish with its buffers.
    await ahead.catch(() => undefined);
    await source.return?.();
  }
}

/** gzip through ISA-L where libisal is installed (about twice zlib's speed), else node:zlib. */
const gunzip: Decompress = (compressed) => {
  const inflater = Inflater.create();
  return inflater ? isalGunzip(compressed, inflater, new BufferPool(ISAL_OUTPUT_CHUNK)) : zlibGunzip(compressed);
};

/**
 * A decompressor whose buffers can be handed on rather than copied: it is done with an input chunk once it
 * asks for the next, and writes into buffers of `outputs` (of `outputSize` bytes), each of which is the
 * consumer's until it asks for the next.
 */
export interface PooledDecompress {
  outputSize: number;
  run(compressed: AsyncIterable<Uint8Array>, outputs: BufferPool): AsyncIterable<Uint8Array>;
}

/** The pooled decompressor for `compression`, where there is one (gzip, with ISA-L). */
export function pooledDecompressor(compression: Compression): PooledDecompress | undefined {
  if (compression !== 'gzip') return undefined;
  const inflater = Inflater.create();
  return inflater ? { outputSize: ISAL_OUTPUT_CHUNK, run: (compressed, outputs) => isalGunzip(compressed, inflater, outputs) } : undefined;
}

/** The gzip decompressors, for tests that hold each to the other: ISA-L's is undefined without libisal. */
export const gunzipEngines = (): { zlib: Decompress; isal: Decompress | undefined } => ({
  zlib: zlibGunzip,
  isal: Inflater.create() ? gunzip : undefined,
});

/** The streaming decompression context of zstd-napi's binding (the part of libzstd this needs). */
interface ZstdDCtx {
  decompressStream(out: Uint8Array, input: Uint8Array): [remaining: number, produced: number, consumed: number];
}

/**
 * zstd, one output chunk per pull: zstd-napi's stream decompresses a whole input chunk at once, so a 72 KB
 * input that inflates to gigabytes would sit in memory; here memory stays one chunk whatever the ratio.
 */
async function* unzstd(compressed: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { DCtx } = requireFromPackage('zstd-napi/binding') as { DCtx: new () => ZstdDCtx };
  const context = new DCtx();
  let inFrame = false;
  for await (const chunk of compressed) {
    let input = chunk;
    for (;;) {
      const out = Buffer.allocUnsafe(OUTPUT_CHUNK);
      const [remaining, produced, consumed] = context.decompressStream(out, input);
      input = input.subarray(consumed);
      if (produced > 0) yield out.subarray(0, produced);
      if (input.length === 0 && (produced < OUTPUT_CHUNK || remaining === 0)) {
        inFrame = remaining !== 0;
        break;
      }
    }
  }
  if (inFrame) throw new LayerFormatError('corrupt zstd stream: it ends in the middle of a frame');
}

/** The decompressor for `compression`, or undefined for uncompressed input. */
export function decompressor(compression: Compression): Decompress | undefined {
  if (compression === 'gzip') return gunzip;
  if (compression === 'zstd') return unzstd;
  return undefined;
}

/**
 * libzstd's own threads for compressing: its multithreaded mode cuts the input into fixed jobs, so the
 * bytes are the same for any number of workers from 1 up (not the same as with none), and a layer stays
 * reproducible across machines. Each worker holds a job's buffers, hence the cap.
 */
const zstdWorkers = () => Math.min(4, availableParallelism());

/** A compressing transform, or undefined for `none`. Output bytes depend only on input and level. */
export function compressor(compression: Compression, level?: number): Transform | undefined {
  if (compression === 'gzip') return new ParallelGzip(level ?? 6);
  if (compression === 'zstd') return new (zstd().CompressStream)({ compressionLevel: level ?? 3, nbWorkers: zstdWorkers() });
  return undefined;
}
