/**
 * Layer compression: detected by magic bytes on read, chosen by the caller on write. gzip comes from
 * node:zlib (written on every core by ParallelGzip); zstd from zstd-napi (libzstd's streaming API; Node 20
 * has no zstd of its own).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Readable, type Transform } from 'node:stream';
import { LayerFormatError, UnsupportedError } from '../errors.js';
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
const gunzip: Decompress = (compressed) => {
  const from = Readable.from(compressed, { objectMode: false });
  const transform = zlib().createGunzip({ chunkSize: OUTPUT_CHUNK });
  from.on('error', (error) => transform.destroy(error));
  return from.pipe(transform);
};

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
