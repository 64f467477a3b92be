/**
 * Layer compression: detected by magic bytes on read, chosen by the caller on write. Reading decodes on the
 * thread pool where the libraries are installed (gzip with ISA-L, zstd with the system's libzstd), else with
 * node:zlib and zstd-napi; gzip is written by node:zlib (on every core by parallelGzip), zstd by zstd-napi
 * (libzstd's streaming API; Node 20 has no zstd of its own).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Transform } from 'node:stream';
import { stream, zlib } from '../builtins.js';
import { LayerFormatError, UnsupportedError } from '../errors.js';
import { NativeDecoder } from '../native.js';
import { BufferPool } from './buffer-pool.js';
import { requireFromPackage } from '../package.js';
import { parallelGzip } from './parallel-gzip.js';

type ZstdNapi = typeof import('zstd-napi');
let zstdModule: ZstdNapi | undefined;


/** zstd-napi, loaded on first use: most commands never touch zstd, and loading it costs ~10 ms of start-up. */
function zstd(): ZstdNapi {
  zstdModule ??= requireFromPackage('zstd-napi') as ZstdNapi;
  return zstdModule;
}

/** The compressions strata reads and writes. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** Bytes `detectCompression` needs to be certain. */
export const COMPRESSION_MAGIC_BYTES = 8;

/**
 * Identifies the compression of a layer from its first bytes (`COMPRESSION_MAGIC_BYTES` for certainty). A
 * zstd stream may open with a skippable frame (magic 0x184D2A50 to 0x184D2A5F, then its length), as
 * containerd and moby recognise it.
 */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.length >= 8 && (head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
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
  const head = new Uint8Array(COMPRESSION_MAGIC_BYTES);
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
  const from = stream().Readable.from(compressed, { objectMode: false });
  const transform = zlib().createGunzip({ chunkSize: OUTPUT_CHUNK });
  from.on('error', (error) => transform.destroy(error));
  return from.pipe(transform);
};

/** The streaming decompression context of zstd-napi's binding (the part of libzstd this needs). */
interface ZstdDCtx {
  decompressStream(out: Uint8Array, input: Uint8Array): [remaining: number, produced: number, consumed: number];
}

/**
 * zstd through zstd-napi, on this thread, one output chunk per pull: zstd-napi's stream decompresses a whole
 * input chunk at once, so a 72 KB input that inflates to gigabytes would sit in memory; here memory stays
 * one chunk whatever the ratio.
 */
async function* zstdNapiDecompress(compressed: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
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
  if (inFrame) throw new LayerFormatError(TRUNCATED.zstd);
}

const TRUNCATED = {
  gzip: 'corrupt gzip stream: unexpected end of file',
  zstd: 'corrupt zstd stream: it ends in the middle of a frame',
} as const;

/**
 * Output chunks of the thread-pool decoders, and the compressed input each call is given at most (copied
 * from the source's chunks). A call's result reaches this thread only at a turn of its event loop, which an
 * apply gives every 5 ms, so a call must be large enough to keep the decoder busy that long: with 1 MiB of
 * output and whatever input the source's chunk had left, the apply waited on the decoder for half its time.
 * 2 MiB decoded as fast as 4 MiB and peaked 6–9 MiB lower.
 */
const NATIVE_OUTPUT_CHUNK = 2 * 1024 * 1024;
const NATIVE_INPUT_STAGE = 1024 * 1024;

/**
 * A stream decoded on the thread pool (see `NativeDecoder`): one chunk decoded ahead while the consumer
 * works on the last, so decoding and applying overlap; memory stays two output chunks and one input stage
 * whatever the ratio.
 */
async function* nativeDecode(
  compressed: AsyncIterable<Uint8Array>,
  compression: 'gzip' | 'zstd',
  decoder: NativeDecoder,
  outputs: BufferPool,
  stageSize = NATIVE_INPUT_STAGE,
): AsyncGenerator<Uint8Array> {
  const source = compressed[Symbol.asyncIterator]();
  const stage = Buffer.allocUnsafe(stageSize);
  let input: Uint8Array = stage.subarray(0, 0);
  // The part of the source's current chunk not yet staged: valid until the source is asked for the next.
  let pending: Uint8Array | undefined;
  let sourceDone = false;
  let ended = false;
  // Copies what the source has, up to a stage, into the stage (the decoder is not using it).
  const restage = async (): Promise<void> => {
    let staged = 0;
    while (staged < stage.length) {
      if (pending === undefined) {
        const next = await source.next();
        if (next.done) {
          sourceDone = true;
          break;
        }
        pending = next.value;
      }
      const n = Math.min(pending.length, stage.length - staged);
      stage.set(pending.subarray(0, n), staged);
      staged += n;
      pending = n === pending.length ? undefined : pending.subarray(n);
    }
    input = stage.subarray(0, staged);
  };
  // The next output chunk, full unless the stream ends, or null after its end.
  const produce = async (): Promise<Uint8Array | null> => {
    const output = outputs.take();
    let filled = 0;
    for (;;) {
      if (input.length === 0 && !sourceDone) await restage();
      if (input.length === 0 && ended) return filled > 0 ? output.subarray(0, filled) : null;
      // With the input used up, a call can still empty what the decoder holds from a full output.
      const [consumed, produced, streamEnded] = await decoder.run(input, output.subarray(filled));
      if (consumed === 0 && produced === 0) {
        throw new LayerFormatError(input.length === 0 ? TRUNCATED[compression] : `corrupt ${compression} stream: the decoder made no progress`);
      }
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

/** The thread-pool decoder for `compression`, where its library is installed. */
function nativeDecoder(compression: Compression): NativeDecoder | undefined {
  if (compression === 'gzip') return NativeDecoder.gzip();
  if (compression === 'zstd') return NativeDecoder.zstd();
  return undefined;
}

/**
 * A decompressor whose buffers can be handed on rather than copied: it is done with an input chunk once it
 * asks for the next, and writes into buffers of `outputs` (of `outputSize` bytes), each of which is the
 * consumer's until it asks for the next.
 */
export interface PooledDecompress {
  outputSize: number;
  run(compressed: AsyncIterable<Uint8Array>, outputs: BufferPool): AsyncIterable<Uint8Array>;
}

/** The pooled decompressor for `compression`: a thread-pool decoder, where its library is installed. */
export function pooledDecompressor(compression: Compression): PooledDecompress | undefined {
  const decoder = nativeDecoder(compression);
  if (decoder === undefined || compression === 'none') return undefined;
  return { outputSize: NATIVE_OUTPUT_CHUNK, run: (compressed, outputs) => nativeDecode(compressed, compression, decoder, outputs) };
}

/**
 * Both decoders of `compression`, for tests that hold one to the other: the one on this thread (node:zlib,
 * zstd-napi) and the thread-pool one (undefined where its library is missing), with the sizes of its output
 * chunks and input stage given.
 */
export function decoderEngines(compression: 'gzip' | 'zstd'): {
  reference: Decompress;
  native: ((compressed: AsyncIterable<Uint8Array>, sizes?: { output?: number; stage?: number }) => AsyncIterable<Uint8Array>) | undefined;
} {
  return {
    reference: decompressor(compression)!,
    native: nativeDecoder(compression)
      ? (compressed, sizes = {}) =>
          nativeDecode(compressed, compression, nativeDecoder(compression)!, new BufferPool(sizes.output ?? NATIVE_OUTPUT_CHUNK), sizes.stage)
      : undefined,
  };
}

/**
 * The decompressor on this thread for `compression` (node:zlib's gzip, zstd-napi), or undefined for
 * uncompressed input: what reads a layer where `pooledDecompressor` has no thread-pool decoder.
 */
export function decompressor(compression: Compression): Decompress | undefined {
  if (compression === 'gzip') return zlibGunzip;
  if (compression === 'zstd') return zstdNapiDecompress;
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
  if (compression === 'gzip') return parallelGzip(level ?? 6);
  if (compression === 'zstd') return new (zstd().CompressStream)({ compressionLevel: level ?? 3, nbWorkers: zstdWorkers() });
  return undefined;
}
