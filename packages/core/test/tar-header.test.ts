import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, EntryType } from '../src/entry.js';
import { tarHeader } from '../src/native.js';
import { OCTAL_LIMIT_12, OCTAL_LIMIT_8 } from '../src/tar/header.js';
import { CHUNK_SIZE, TarWriter } from '../src/tar/writer.js';

/** The headers of `entries` as the writer encodes them: through the addon's encoder, or all in JavaScript. */
function encoded(entries: readonly Entry[], javascriptHeaders: boolean): Buffer {
  const writer = new TarWriter({ javascriptHeaders });
  const chunks: Uint8Array[] = [];
  for (const entry of entries) {
    writer.writeHeader(entry);
    chunks.push(...writer.take().map((chunk) => Uint8Array.from(chunk)));
  }
  writer.finish();
  chunks.push(...writer.take());
  return Buffer.concat(chunks);
}

const TYPES: EntryType[] = ['file', 'directory', 'symlink', 'hardlink', 'char', 'block', 'fifo'];

/** Name pieces: ASCII, multi-byte UTF-8, a surrogate pair, surrogate escapes of bytes that are not UTF-8, and what the addon declines (a NUL, a lone surrogate that is no escape). */
const piece = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom('a', 'bin', 'x'.repeat(40), 'é', '日本', '😀', '\udc80', '\udcff', 'PaxHeaders', '.wh.x', ' ') },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\ud800') },
);
const name = (maxPieces: number) => fc.array(fc.array(piece, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('')), { minLength: 1, maxLength: maxPieces }).map((parts) => parts.join('/'));

/** Numbers on both sides of every limit the encoder switches format at. */
const id = fc.oneof(fc.constantFrom(0, 1000, OCTAL_LIMIT_8, OCTAL_LIMIT_8 + 1, 2 ** 32 - 2, 2 ** 32 - 1), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const size = fc.oneof(fc.constantFrom(0, 1, 511, 512, OCTAL_LIMIT_12, OCTAL_LIMIT_12 + 1, 2 ** 40), fc.integer({ min: 0, max: 2 ** 31 }));
const sec = fc.oneof(fc.constantFrom(0, -1, -86_400, 1_700_000_000, OCTAL_LIMIT_12, OCTAL_LIMIT_12 + 1, -(2 ** 40)), fc.integer({ min: -(2 ** 34), max: 2 ** 36 }));
const nsec = fc.oneof(fc.constantFrom(0, 1, 10, 500_000_000, 999_999_999), fc.integer({ min: 0, max: 999_999_999 }));

const entry: fc.Arbitrary<Entry> = fc
  .record({
    path: fc.oneof({ weight: 4, arbitrary: name(8) }, { weight: 1, arbitrary: name(30) }),
    type: fc.constantFrom(...TYPES),
    mode: fc.integer({ min: 0, max: 0o7777 }),
    uid: id,
    gid: id,
    size,
    sec,
    nsec,
    linkname: fc.option(fc.oneof({ weight: 3, arbitrary: name(4) }, { weight: 1, arbitrary: name(30) }), { nil: undefined }),
    devmajor: fc.option(id, { nil: undefined }),
    devminor: fc.option(id, { nil: undefined }),
  })
  .map(({ sec, nsec, size, type, linkname, devmajor, devminor, ...fields }) => ({
    ...fields,
    type,
    size: type === 'file' ? size : 0,
    mtime: { sec, nsec },
    xattrs: new Map(),
    ...(linkname === undefined ? {} : { linkname }),
    ...(devmajor === undefined ? {} : { devmajor }),
    ...(devminor === undefined ? {} : { devminor }),
  }));

describe("the addon's tar header encoder", () => {
  it('writes the bytes the JavaScript encoder writes, for any name, link, number and time, across chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 40 }), (entries) => {
        expect(encoded(entries, false).equals(encoded(entries, true))).toBe(true);
      }),
      { numRuns: 400 },
    );
    // Enough entries, long names among them, that the headers fill several chunks, each ending at its own offset.
    const many = fc.sample(entry, { numRuns: 3000, seed: 7 });
    // Most of them the addon's encoder writes itself (the rest it declines, to the JavaScript encoder).
    const chunk = new Uint8Array(CHUNK_SIZE);
    const accepted = many.filter((e) => tarHeader(chunk, 0, e.path, e.linkname, 0x30, e.mode, e.uid, e.gid, e.size, e.mtime, e.devmajor ?? 0, e.devminor ?? 0) > 0);
    expect(accepted.length).toBeGreaterThan(many.length / 2);
    const native = encoded(many, false);
    expect(native.length).toBeGreaterThan(2 * CHUNK_SIZE);
    expect(native.equals(encoded(many, true))).toBe(true);
  });

  it('writes an ordinary entry itself, PAX records included, and declines what only the JavaScript encoder writes', () => {
    const chunk = new Uint8Array(4096);
    const write = (path: string, linkname?: string, sec = 1_700_000_000, nsec = 0) => tarHeader(chunk, 0, path, linkname, 0x30, 0o644, 0, 0, 5, { sec, nsec }, 0, 0);
    expect(write('usr/bin/env')).toBe(512);
    expect(write('usr/bin/env', undefined, 1_700_000_000, 5)).toBe(3 * 512); // PAX header, its time record, the header
    expect(write(`${'d/'.repeat(200)}f`, 'x'.repeat(300))).toBe(512 + 1024 + 512);
    expect(write('caf\udce9')).toBe(512); // an escape: its byte
    expect(chunk[3]).toBe(0xe9);
    expect(write('a\u0000b')).toBe(0);
    expect(write('a\ud800b')).toBe(0);
    expect(write('x'.repeat(5000))).toBe(0);
    expect(write('l', '\u0000')).toBe(0);
    expect(tarHeader(chunk, 0, 'f', undefined, 0x30, 0o644, -1, 0, 0, { sec: 0, nsec: 0 }, 0, 0)).toBe(0);
    expect(tarHeader(chunk, 0, 'f', undefined, 0x30, 0o644, 0, 0, 0.5, { sec: 0, nsec: 0 }, 0, 0)).toBe(0);
    expect(tarHeader(chunk, 0, 'f', undefined, 0x30, 0o644, 0, 0, 0, { sec: 0, nsec: 1e9 }, 0, 0)).toBe(0);
  });

  it('writes nothing and asks for the room it needs when the chunk is short', () => {
    const chunk = new Uint8Array(1024).fill(0xaa);
    expect(tarHeader(chunk, 600, 'f', undefined, 0x30, 0o644, 0, 0, 0, { sec: 1, nsec: 0 }, 0, 0)).toBe(-512);
    expect(tarHeader(chunk, 0, 'f', undefined, 0x30, 0o644, 0, 0, 0, { sec: 1, nsec: 1 }, 0, 0)).toBe(-1536);
    expect(chunk.every((b) => b === 0xaa)).toBe(true);
    expect(tarHeader(chunk, 512, 'f', undefined, 0x30, 0o644, 0, 0, 0, { sec: 1, nsec: 0 }, 0, 0)).toBe(512);
  });

  it('throws a TypeError for arguments of the wrong kind', () => {
    const call = (...args: unknown[]) => (tarHeader as unknown as (...a: unknown[]) => number)(...args);
    const time = { sec: 0, nsec: 0 };
    expect(() => call(new Uint16Array(512), 0, 'f', undefined, 0x30, 0o644, 0, 0, 0, time, 0, 0)).toThrow(TypeError);
    expect(() => call(new Uint8Array(512), 513, 'f', undefined, 0x30, 0o644, 0, 0, 0, time, 0, 0)).toThrow(TypeError);
    expect(() => call(new Uint8Array(512), 0, 7, undefined, 0x30, 0o644, 0, 0, 0, time, 0, 0)).toThrow(TypeError);
    expect(() => call(new Uint8Array(512), 0, 'f', 7, 0x30, 0o644, 0, 0, 0, time, 0, 0)).toThrow(TypeError);
  });
});
