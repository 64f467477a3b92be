import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { crc32, gunzipSync, gzipSync, deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { needs } from '../../../test/helpers/oracle.js';
import { compressor, decoderEngines, decompressor, detectCompression, type Compression, type Decompress } from '../src/blob/compression.js';
import { digestBlob } from '../src/index.js';

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

/** `data` cut into pieces of the given sizes (cycled). */
function cut(data: Uint8Array, pieces: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    chunks.push(data.subarray(at, at + pieces[i % pieces.length]!));
    at += pieces[i % pieces.length]!;
  }
  return chunks;
}

/** What a decompressor makes of `chunks`: the bytes, or that it failed. */
async function outcome(decompress: Decompress, chunks: Uint8Array[]): Promise<Buffer | 'error'> {
  async function* feed() {
    for (const chunk of chunks) yield chunk;
  }
  try {
    const parts: Uint8Array[] = [];
    for await (const part of decompress(feed())) parts.push(Buffer.from(part));
    return Buffer.concat(parts);
  } catch {
    return 'error';
  }
}

/** A gzip member with every optional header field (FEXTRA, FNAME, FCOMMENT, FHCRC) around `data`. */
function gzipWithAllHeaderFields(data: Buffer): Buffer {
  const head = Buffer.from([0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 0, 3]);
  const extra = Buffer.from([4, 0, 0x41, 0x42, 0, 0]);
  const name = Buffer.from('layer.tar\0');
  const comment = Buffer.from('made by hand\0');
  const header = Buffer.concat([head, extra, name, comment]);
  const hcrc = Buffer.alloc(2);
  hcrc.writeUInt16LE(crc32(header) & 0xffff);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length, 4);
  return Buffer.concat([header, hcrc, deflateRawSync(data), trailer]);
}

const engines = decoderEngines('gzip');
const zstdEngines = decoderEngines('zstd');

/** Every stream, decoded natively in every chunking with default and with tiny sizes, gives what the reference gives. */
async function expectSameOutcomes(cases: [Record<string, Buffer>, number[][]][], reference: Decompress, native: NonNullable<typeof engines.native>): Promise<void> {
  for (const [streams, chunkings] of cases) {
    for (const [name, stream] of Object.entries(streams)) {
      const expected = await outcome(reference, [stream]);
      for (const pieces of chunkings) {
        // Small outputs and stages too: the decoder then often stops on a full output holding more, its
        // input used up, and a source chunk is staged across several calls.
        for (const sizes of [{}, { output: 100, stage: 64 }]) {
          const got = await outcome((compressed) => native(compressed, sizes), cut(stream, pieces));
          const same = got === 'error' || expected === 'error' ? got === expected : got.equals(expected);
          expect(same, `${name} (${stream.length} bytes) in pieces of ${pieces.join(', ')}, sizes ${JSON.stringify(sizes)}: ${got === 'error' ? 'error' : 'bytes'} where the reference gives ${expected === 'error' ? 'error' : 'bytes'}`).toBe(true);
        }
      }
    }
  }
}

describe('gzip read through ISA-L, zstd through the system libzstd, on the thread pool', () => {
  it('is built and installed where CI runs', () => {
    if (process.env.CI === 'true') {
      expect(engines.native).toBeDefined();
      expect(zstdEngines.native).toBeDefined();
    }
  });

  it.skipIf(engines.native === undefined && process.env.CI !== 'true')('makes of every gzip stream, whole or broken, what node:zlib makes of it', async () => {
    const isal = engines.native!;
    /** Streams whole and broken around `data`. */
    const streamsOf = (data: Buffer): Record<string, Buffer> => {
      const one = gzipSync(data);
      const second = gzipSync(Buffer.from('second member'));
      const flipped = Buffer.from(one);
      flipped[one.length >> 1]! ^= 0x10;
      const badCrc = Buffer.from(one);
      badCrc[one.length - 8]! ^= 1;
      const badLength = Buffer.from(one);
      badLength[one.length - 1]! ^= 1;
      const headerCrc = gzipWithAllHeaderFields(data);
      const badHeaderCrc = Buffer.from(headerCrc);
      badHeaderCrc[headerCrc.indexOf('made by hand')]! ^= 1;
      const reservedFlag = Buffer.from(one);
      reservedFlag[3]! |= 0x20;
      return {
        'one member': one,
        'three members': Buffer.concat([one, gzipSync(Buffer.alloc(0)), second]),
        'every header field': headerCrc,
        'trailing zeros': Buffer.concat([one, Buffer.alloc(1000)]),
        'zeros, then anything': Buffer.concat([one, Buffer.alloc(3), Buffer.from('junk')]),
        'trailing garbage': Buffer.concat([one, Buffer.from('junk')]),
        'a flipped byte': flipped,
        'a wrong CRC-32': badCrc,
        'a wrong length': badLength,
        'a wrong header CRC': badHeaderCrc,
        'a reserved flag': reservedFlag,
        'cut in the header': one.subarray(0, 5),
        'cut in the data': one.subarray(0, one.length >> 1),
        'cut in the trailer': one.subarray(0, one.length - 3),
        'cut in the second member': Buffer.concat([one, second.subarray(0, 12)]),
      };
    };
    const cases: [Record<string, Buffer>, number[][]][] = [
      // Every split of headers and trailers, byte by byte, on small streams.
      [{ ...streamsOf(sample(4_000)), 'empty content': gzipSync(Buffer.alloc(0)), 'not deflate': Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4]) }, [[1], [1 << 30]]],
      [
        { ...streamsOf(sample(3 * BLOCK + 12_345)), incompressible: gzipSync(randomBytes(2 * BLOCK), { level: 1 }), 'stored blocks': gzipSync(randomBytes(100_000), { level: 0 }) },
        [[1 << 30], [7, 1000, 65_536], [BLOCK + 3]],
      ],
    ];
    await expectSameOutcomes(cases, engines.reference, isal);
    // Not two decoders failing alike on everything.
    const text = Buffer.from('whiteout '.repeat(1000));
    expect(await outcome((compressed) => isal(compressed), [gzipSync(text)])).toEqual(text);
  });

  it.skipIf(engines.native === undefined && process.env.CI !== 'true')('stops with its consumer and keeps memory to its chunks however far a stream inflates', async () => {
    const bomb = gzipSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 }); // 256 MiB from about 256 KB
    let pulled = 0;
    async function* feed() {
      for (const chunk of cut(bomb, [4096])) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const sizes = { output: 1024 * 1024, stage: 16 * 1024 };
    let made = 0;
    for await (const part of engines.native!(feed(), sizes)) {
      made += part.length;
      if (made >= 4 * sizes.output) break;
    }
    expect(made).toBe(4 * sizes.output);
    expect(pulled).toBeLessThan(bomb.length / 4); // about a stage per output chunk, not the whole stream
  });

  it.skipIf(zstdEngines.native === undefined && process.env.CI !== 'true')('makes of every zstd stream, whole or broken, what zstd-napi makes of it', async () => {
    const { CompressStream } = await import('zstd-napi');
    const zstdOf = async (data: Buffer, options: { checksumFlag?: boolean; compressionLevel?: number } = {}) =>
      buffer(Readable.from([data]).pipe(new CompressStream({ checksumFlag: true, ...options })));
    const streamsOf = async (data: Buffer): Promise<Record<string, Buffer>> => {
      const one = await zstdOf(data);
      const second = await zstdOf(Buffer.from('second frame'));
      const flipped = Buffer.from(one);
      flipped[one.length >> 1]! ^= 0x10;
      const badChecksum = Buffer.from(one);
      badChecksum[one.length - 1]! ^= 1;
      const skippable = Buffer.alloc(8 + 5);
      skippable.writeUInt32LE(0x184d2a50, 0);
      skippable.writeUInt32LE(5, 4);
      return {
        'one frame': one,
        'no checksum': await zstdOf(data, { checksumFlag: false }),
        'three frames': Buffer.concat([one, await zstdOf(Buffer.alloc(0)), second]),
        'a skippable frame between': Buffer.concat([one, skippable, second]),
        'a skippable frame first': Buffer.concat([skippable, one]),
        'trailing garbage': Buffer.concat([one, Buffer.from('junk')]),
        'trailing zeros': Buffer.concat([one, Buffer.alloc(16)]),
        'a flipped byte': flipped,
        'a wrong checksum': badChecksum,
        'cut in the header': one.subarray(0, 5),
        'cut in the data': one.subarray(0, one.length >> 1),
        'cut in the checksum': one.subarray(0, one.length - 2),
        'cut in the second frame': Buffer.concat([one, second.subarray(0, 9)]),
      };
    };
    await expectSameOutcomes(
      [
        [await streamsOf(sample(4_000)), [[1], [1 << 30]]],
        [{ ...(await streamsOf(sample(3 * BLOCK + 12_345))), incompressible: await zstdOf(randomBytes(2 * BLOCK), { compressionLevel: 1 }) }, [[1 << 30], [7, 1000, 65_536], [BLOCK + 3]]],
      ],
      zstdEngines.reference,
      zstdEngines.native!,
    );
    const text = Buffer.from('whiteout '.repeat(1000));
    expect(await outcome((compressed) => zstdEngines.native!(compressed), [await zstdOf(text)])).toEqual(text);
  });
});

describe('zstd that opens with a skippable frame', () => {
  const skippable = (magic: number, payload: Buffer) => {
    const frame = Buffer.alloc(8 + payload.length);
    frame.writeUInt32LE(magic, 0);
    frame.writeUInt32LE(payload.length, 4);
    payload.copy(frame, 8);
    return frame;
  };

  it('is detected by each of the sixteen magic numbers, as containerd and moby detect it, and nothing else near them is', () => {
    for (let magic = 0x184d2a50; magic <= 0x184d2a5f; magic++) expect(detectCompression(skippable(magic, Buffer.alloc(0)))).toBe('zstd');
    expect(detectCompression(skippable(0x184d2a60, Buffer.alloc(0)))).toBe('none');
    expect(detectCompression(skippable(0x184d2a4f, Buffer.alloc(0)))).toBe('none');
    expect(detectCompression(skippable(0x184d2a50, Buffer.alloc(0)).subarray(0, 7))).toBe('none'); // too short to be a frame
  });

  it.skipIf(!needs('zstd'))('gives the diffID of what `zstd -d` makes of it', async () => {
    const tar = execFileSync('tar', ['-c', '-C', import.meta.dirname, '.'], { maxBuffer: 1 << 30 });
    const layer = Buffer.concat([skippable(0x184d2a5e, Buffer.from('metadata a reader skips')), execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 30 })]);
    const inflated = execFileSync('zstd', ['-q', '-d', '-c'], { input: layer, maxBuffer: 1 << 30 });
    expect(inflated.equals(tar)).toBe(true);
    const digests = await digestBlob(layer);
    expect(digests).toMatchObject({ compression: 'zstd', uncompressedSize: tar.length, size: layer.length });
    expect(digests.uncompressedDigest).toBe(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
  });
});
