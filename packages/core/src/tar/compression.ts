/**
 * Layer compression: detected by magic bytes on read, chosen by the caller on write. gzip comes from
 * node:zlib (written on every core by ParallelGzip); zstd from zstd-napi (libzstd's streaming API; Node 20
 * has no zstd of its own).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Transform } from 'node:stream';
import { UnsupportedError } from '../errors.js';
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

/** A decompressing transform, or undefined for uncompressed input. */
export function decompressor(compression: Compression): Transform | undefined {
  if (compression === 'gzip') return zlib().createGunzip({ chunkSize: 256 * 1024 });
  if (compression === 'zstd') return new (zstd().DecompressStream)();
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

/** The OCI media type of a layer with this compression. */
export function layerMediaType(compression: Compression): string {
  const base = 'application/vnd.oci.image.layer.v1.tar';
  return compression === 'none' ? base : `${base}+${compression}`;
}
