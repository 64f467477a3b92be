import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressor, decompressor, type Compression } from '../src/blob/compression.js';

const BLOCK = 256 * 1024;

/** Text-like input that compresses, with random stretches that do not. */
function sample(size: number): Buffer {
  const words = ['layer', 'whiteout', 'opaque', 'overlay', 'tar', 'digest', '\n', ' ', 'usr/share/doc/'];
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    if (at % 100_000 < 5_000) {
      const noise = randomBytes(Math.min(1000, size - at));
      noise.copy(out, at);
      at += noise.length;
    } else {
      at += out.write(words[(at * 7) % words.length]!, at);
    }
  }
  return out;
}

/** `data` fed to a fresh compressor in pieces of the given sizes (cycled), compressed whole. */
async function compress(compression: Compression, data: Buffer, pieces: number[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = pieces[i % pieces.length]!;
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return buffer(Readable.from(chunks).pipe(compressor(compression)!));
}

describe('compressors', () => {
  const sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12_345];
  const chunkings = [[1 << 30], [1000], [1, 70_000, 333, BLOCK + 7]];

  it('gzip on every core: one valid gzip stream, the same bytes however the input is chunked, as small as one stream’s', async () => {
    for (const size of sizes) {
      const data = sample(size);
      const outputs = await Promise.all(chunkings.map((pieces) => compress('gzip', data, pieces)));
      for (const out of outputs) expect(out.equals(outputs[0]!)).toBe(true);
      const out = outputs[0]!;
      expect(gunzipSync(out).equals(data)).toBe(true);
      execFileSync('gzip', ['-t'], { input: out }); // GNU gzip checks CRC and length too
      if (size > BLOCK) expect(out.length).toBeLessThan(gzipSync(data, { level: 6 }).length * 1.01);
    }
  });

  it('zstd on several threads: the same bytes however the input is chunked, and they decompress', async () => {
    for (const size of sizes) {
      const data = sample(size);
      const outputs = await Promise.all(chunkings.map((pieces) => compress('zstd', data, pieces)));
      for (const out of outputs) expect(out.equals(outputs[0]!)).toBe(true);
      const back = await buffer(Readable.from(decompressor('zstd')!(Readable.from([outputs[0]!]))));
      expect(back.equals(data)).toBe(true);
    }
  });
});
