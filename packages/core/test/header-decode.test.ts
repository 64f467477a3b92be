import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEADER_FIELD, tarHeaderFields } from '../src/native.js';
import { decodeHeader, decodeHeaderInJavaScript, encodeHeader, type RawHeader } from '../src/tar/header.js';

const enc = new TextEncoder();

/** What a decoder makes of a block: its header, or its error's code and message. */
function outcome(decode: (block: Uint8Array) => RawHeader, block: Uint8Array): unknown {
  try {
    return { header: decode(block) };
  } catch (error) {
    return { error: [(error as { code?: string }).code, (error as Error).message] };
  }
}

/** Writes the checksum field: as writers sum (unsigned), as some historic ones did (signed), or left as it is. */
function sign(block: Uint8Array, how: 'unsigned' | 'signed' | 'none', digits: 'octal6' | 'octal7' | 'spaces'): void {
  if (how === 'none') return;
  let sum = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    sum += how === 'signed' && b > 127 ? b - 256 : b;
  }
  const text = digits === 'octal6' ? `${sum.toString(8).padStart(6, '0')}\0 ` : digits === 'spaces' ? ` ${sum.toString(8)}`.padEnd(8, ' ') : `${sum.toString(8).padStart(7, '0')}\0`;
  block.set(enc.encode(text).subarray(0, 8), 148);
}

/** The byte ranges a mutation lands in: every numeric field, the magic, the GNU time fields (or ustar prefix) and names. */
const FIELDS = [
  [0, 100], [100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [156, 1], [157, 100], [257, 8], [265, 32], [297, 32], [329, 8], [337, 8],
  [345, 12], [357, 12], [369, 131],
] as const;
const BYTES = [0, 0x20, 0x30, 0x31, 0x37, 0x38, 0x39, 0x2f, 0x41, 0x61, 0x7f, 0x80, 0xc3, 0xff];

const block = fc
  .record({
    name: fc.string({ maxLength: 100 }),
    prefix: fc.string({ maxLength: 155 }),
    linkname: fc.string({ maxLength: 100 }),
    uname: fc.string({ maxLength: 32 }),
    mode: fc.integer({ min: 0, max: 0o7777777 }),
    uid: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 0o7777777 }) }, { weight: 1, arbitrary: fc.constant(3_000_000) }),
    size: fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 2 ** 31 }) },
      { weight: 2, arbitrary: fc.constantFrom(2 ** 30 - 1, 2 ** 30, 0o77777777777, 2 ** 36) },
      { weight: 1, arbitrary: fc.integer({ min: -(2 ** 40), max: 2 ** 40 }) }, // past octal both ways: base-256
    ),
    mtime: fc.oneof(
      { weight: 6, arbitrary: fc.oneof(fc.constantFrom(0, 1_700_000_000, 2 ** 31, 0o77777777777), fc.integer({ min: 0, max: 0o77777777777 })) },
      { weight: 1, arbitrary: fc.constantFrom(-1, -(2 ** 36), 2 ** 36) }, // base-256
    ),
    typeflag: fc.constantFrom('0', '\0', '5', '2', '1', '3', '4', '6', 'x', 'g', 'L', 'K', 'S', 'D', 'Z'),
    magic: fc.constantFrom('ustar\0' + '00', 'ustar  \0', '\0'.repeat(8), 'ustar\0' + 'xx', 'ustar ?\0', 'USTAR\0' + '00'),
    mutations: fc.oneof(
      { weight: 1, arbitrary: fc.constant([]) },
      { weight: 2, arbitrary: fc.array(fc.record({ field: fc.integer({ min: 0, max: FIELDS.length - 1 }), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...BYTES), fc.integer({ min: 0, max: 255 })) }), { minLength: 1, maxLength: 3 }) },
    ),
    checksum: fc.constantFrom('unsigned', 'unsigned', 'unsigned', 'signed', 'none'),
    digits: fc.constantFrom('octal6', 'octal7', 'spaces'),
  })
  .map((f) => {
    const b = new Uint8Array(512);
    const cut = (s: string, max: number) => enc.encode(s).subarray(0, max);
    encodeHeader(b, { name: cut(f.name, 100), prefix: cut(f.prefix, 155), linkname: cut(f.linkname, 100), uname: cut(f.uname, 32), mode: f.mode, uid: f.uid, gid: 0, size: f.size, mtime: f.mtime, typeflag: f.typeflag });
    b.set(enc.encode(f.magic).subarray(0, 8), 257);
    for (const m of f.mutations) {
      const [offset, length] = FIELDS[m.field]!;
      b[offset + (m.at % length)] = m.byte;
    }
    sign(b, f.checksum, f.digits);
    return b;
  });

describe("the addon's tar header decoder", () => {
  it('decodes every block as the JavaScript decoder does, errors included: mutated numbers, magics, checksums, names', () => {
    fc.assert(
      fc.property(block, fc.integer({ min: 0, max: 3 }), (b, shift) => {
        // Any alignment in its buffer, as a reader's chunk gives blocks.
        const buffer = new Uint8Array(512 + 3);
        buffer.set(b, shift);
        const at = buffer.subarray(shift, shift + 512);
        expect(outcome(decodeHeader, at)).toEqual(outcome(decodeHeaderInJavaScript, at));
      }),
      { numRuns: 20_000 },
    );
  });

  it('decodes the common headers itself, and leaves base-256 numbers, bad fields and signed checksums to the JavaScript', () => {
    const out = new Int32Array(HEADER_FIELD.count);
    const b = new Uint8Array(512);
    encodeHeader(b, { name: enc.encode('usr/bin/env'), prefix: enc.encode('some'), mode: 0o755, uid: 1000, gid: 100, size: 0o77777777777, mtime: 1_700_000_000, typeflag: '0', uname: enc.encode('root') });
    expect(tarHeaderFields(b, out)).toBe(1);
    expect([out[HEADER_FIELD.mode], out[HEADER_FIELD.uid], out[HEADER_FIELD.gid], out[HEADER_FIELD.name], out[HEADER_FIELD.prefix], out[HEADER_FIELD.uname]]).toEqual([0o755, 1000, 100, 11, 4, 4]);
    expect(out[HEADER_FIELD.sizeHigh]! * 2 ** 30 + out[HEADER_FIELD.sizeLow]!).toBe(0o77777777777);
    expect(decodeHeader(b).size).toBe(0o77777777777);

    b.set(enc.encode('ustar  \0'), 257);
    sign(b, 'unsigned', 'octal6');
    expect(tarHeaderFields(b, out)).toBe(2);

    const base256 = new Uint8Array(512);
    encodeHeader(base256, { name: enc.encode('big'), mode: 0o644, uid: 3_000_000, gid: 0, size: 0, mtime: 0, typeflag: '0' });
    expect(tarHeaderFields(base256, out)).toBe(-1);
    expect(decodeHeader(base256).uid).toBe(3_000_000);

    const signed = Uint8Array.from(b);
    signed[0] = 0xff;
    sign(signed, 'signed', 'octal6');
    expect(tarHeaderFields(signed, out)).toBe(-1);
    expect(decodeHeader(signed).name[0]).toBe(0xff);

    const garbage = Uint8Array.from(b);
    garbage[100] = 0x39;
    sign(garbage, 'unsigned', 'octal6');
    expect(tarHeaderFields(garbage, out)).toBe(-1);
    expect(() => decodeHeader(garbage)).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT', message: expect.stringContaining('mode is not a number') }));
  });

  it('throws a TypeError for arguments of the wrong kind', () => {
    const call = (...args: unknown[]) => (tarHeaderFields as unknown as (...a: unknown[]) => number)(...args);
    expect(() => call(new Uint8Array(511), new Int32Array(HEADER_FIELD.count))).toThrow(TypeError);
    expect(() => call(new Uint8Array(512), new Float64Array(HEADER_FIELD.count))).toThrow(TypeError);
    expect(() => call(new Uint8Array(512), new Int32Array(HEADER_FIELD.count - 1))).toThrow(TypeError);
    expect(() => call(new Uint16Array(256), new Int32Array(HEADER_FIELD.count))).toThrow(TypeError);
  });
});
