import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeName, encodeName, hasEscapes, nameByteLength } from '../src/name-bytes.js';
import { compareNames } from '../src/path.js';

/** Bytes that are mostly not UTF-8, with well-formed sequences mixed in. */
const nameBytes = fc.array(
  fc.oneof(fc.integer({ min: 0x01, max: 0xff }).map((b) => [b]), fc.constantFrom([0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x92, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xc0, 0xaf])),
  { maxLength: 24 },
).map((parts) => Uint8Array.from(parts.flat()));

describe('names as bytes', () => {
  it('any bytes decode to a name that encodes back to them', () => {
    fc.assert(
      fc.property(nameBytes, (bytes) => {
        const name = decodeName(bytes);
        expect(Buffer.from(encodeName(name))).toEqual(Buffer.from(bytes));
        expect(nameByteLength(name)).toBe(bytes.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('well-formed UTF-8 decodes as UTF-8, without escapes; anything else has them', () => {
    expect(decodeName(Buffer.from('café 💀', 'utf8'))).toBe('café 💀');
    expect(hasEscapes('café 💀')).toBe(false);
    // A surrogate's UTF-8 form (0xed 0xa0 0x80) and an overlong '/' (0xc0 0xaf) are not UTF-8: byte by byte.
    expect(decodeName(Uint8Array.from([0x61, 0xed, 0xa0, 0x80, 0xc0, 0xaf]))).toBe('a\udced\udca0\udc80\udcc0\udcaf');
    expect(decodeName(Uint8Array.from([0x78, 0xe2, 0x82]))).toBe('x\udce2\udc82');
    expect(hasEscapes('x\udce2')).toBe(true);
    // A low surrogate of a pair is no escape, though it lies in the escapes' range (U+1F480 is \ud83d\udc80).
    expect(Buffer.from(encodeName('\ud83d\udc80'))).toEqual(Buffer.from('💀', 'utf8'));
  });

  it('names compare as their bytes do', () => {
    fc.assert(
      fc.property(nameBytes, nameBytes, (a, b) => {
        expect(Math.sign(compareNames(decodeName(a), decodeName(b)))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
  });
});
