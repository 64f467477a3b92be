import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { asciiText } from '../src/tar/ascii.js';
import { decodePax, encodePax, formatPaxTime, parsePaxTime } from '../src/tar/pax.js';
import { BLOCK_SIZE, encodeHeader, OCTAL_LIMIT_12 } from '../src/tar/header.js';
import { TarWriter } from '../src/tar/writer.js';

describe('pax records', () => {
  it('round trip arbitrary binary values byte for byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.stringMatching(/^[A-Za-z.]{1,40}$/), (value, key) => {
        const decoded = decodePax(encodePax([[key, value]]));
        expect(Buffer.from(decoded.get(key)!)).toEqual(Buffer.from(value));
      }),
    );
  });

  it('length prefixes count themselves across digit boundaries', () => {
    for (let n = 0; n < 1100; n++) {
      const record = encodePax([['k', 'v'.repeat(n)]]);
      expect(Number(Buffer.from(record).toString('latin1').split(' ')[0])).toBe(record.length);
    }
  });

  it("joins GNU sparse 0.0's repeated offset and length records, in order, into one map record; refuses them out of order", () => {
    const records = (pairs: Array<[string, string]>) => encodePax(pairs);
    const joined = decodePax(records([['GNU.sparse.offset', '0'], ['GNU.sparse.numbytes', '4'], ['path', 'f'], ['GNU.sparse.offset', '100'], ['GNU.sparse.numbytes', '2']]));
    expect(Buffer.from(joined.get('GNU.sparse.map')!).toString()).toBe('0,4,100,2');
    expect(joined.has('GNU.sparse.offset')).toBe(false);
    expect(Buffer.from(joined.get('path')!).toString()).toBe('f');
    for (const bad of [[['GNU.sparse.numbytes', '4']], [['GNU.sparse.offset', '0'], ['GNU.sparse.offset', '1']], [['GNU.sparse.offset', '0,1']]] as Array<Array<[string, string]>>) {
      expect(() => decodePax(records(bad))).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    }
  });

  it('refuses a record whose length runs past the data', () => {
    expect(() => decodePax(Buffer.from('99 path=x\n'))).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
  });

  it('times: negative with fraction, whole, far future', () => {
    expect(formatPaxTime({ sec: -2, nsec: 500_000_000 })).toBe('-1.5');
    expect(formatPaxTime({ sec: -1, nsec: 250_000_000 })).toBe('-0.75');
    expect(parsePaxTime('-0.75')).toEqual({ sec: -1, nsec: 250_000_000 });
    expect(parsePaxTime('4102444800.123456789')).toEqual({ sec: 4_102_444_800, nsec: 123_456_789 });
    fc.assert(
      fc.property(fc.integer({ min: -1e11, max: 1e11 }), fc.integer({ min: 0, max: 999_999_999 }), (sec, nsec) => {
        expect(parsePaxTime(formatPaxTime({ sec, nsec }))).toEqual({ sec, nsec });
      }),
    );
  });

  it('times: digits past nanoseconds are dropped, not rounded; malformed times are refused', () => {
    expect(parsePaxTime('7.1234567899999999')).toEqual({ sec: 7, nsec: 123_456_789 });
    expect(parsePaxTime('-7.0000000001')).toEqual({ sec: -7, nsec: 0 });
    expect(parsePaxTime('12')).toEqual({ sec: 12, nsec: 0 });
    // As Go reads them (containerd, moby), and Python too: a plus sign, a point without digits.
    expect(parsePaxTime('+12')).toEqual({ sec: 12, nsec: 0 });
    expect(parsePaxTime('12.')).toEqual({ sec: 12, nsec: 0 });
    expect(parsePaxTime('-12.')).toEqual({ sec: -12, nsec: 0 });
    for (const bad of ['', '-', '+', '.5', '-.5', '.', '1.2.3', '1e5', ' 1', '1 ', '+-1', '-+1', '--1', '++1', '1.+5', '1.-5', '99999999999999999999']) {
      expect(() => parsePaxTime(bad), bad).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    }
  });
});

describe('asciiText', () => {
  it("is the bytes' text for ASCII at any offset and length, and undefined for anything else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ max: 0x7f, maxLength: 20_000 }), fc.uint8Array({ maxLength: 20_000 })), fc.nat(64), (bytes, lead) => {
        // A view into a larger buffer, as the reader's fields are.
        const buffer = new Uint8Array(lead + bytes.length + 7).fill(0x41);
        buffer.set(bytes, lead);
        const view = buffer.subarray(lead, lead + bytes.length);
        const ascii = bytes.every((b) => b < 0x80);
        expect(asciiText(view)).toBe(ascii ? Buffer.from(bytes).toString('latin1') : undefined);
      }),
      { numRuns: 200 },
    );
    const long = new Uint8Array(20_000).map((_, i) => 0x20 + (i % 95));
    expect(asciiText(long)).toBe(Buffer.from(long).toString('latin1'));
    expect(asciiText(new Uint8Array(0))).toBe('');
  });
});

describe("the tar writer's time records", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const none = new Uint8Array(0);

  it('writes a time that needs PAX, alone, as the records of any other entry are written: header and record byte for byte', () => {
    const written = (mtime: { sec: number; nsec: number }) => {
      const writer = new TarWriter();
      writer.writeHeader({ path: 'dir/file', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime, xattrs: new Map() });
      writer.finish();
      return Buffer.concat(writer.take());
    };
    expect(written({ sec: 1_700_000_000, nsec: 500_000_000 }).subarray(512, 534).toString('latin1')).toBe('22 mtime=1700000000.5\n');
    fc.assert(
      fc.property(fc.integer({ min: -1e11, max: 1e11 }), fc.integer({ min: 0, max: 999_999_999 }), (sec, nsec) => {
        fc.pre(nsec !== 0 || sec < 0 || sec > OCTAL_LIMIT_12);
        const out = written({ sec, nsec });
        const record = encodePax([['mtime', formatPaxTime({ sec, nsec })]]);
        const header = new Uint8Array(BLOCK_SIZE);
        const mtime = Math.max(0, Math.min(sec, OCTAL_LIMIT_12));
        encodeHeader(header, { name: bytes('PaxHeaders/file'), prefix: none, mode: 0o644, uid: 0, gid: 0, size: record.length, mtime, typeflag: 'x', linkname: none, uname: none, gname: none, devmajor: 0, devminor: 0 });
        expect(out.subarray(0, BLOCK_SIZE)).toEqual(Buffer.from(header));
        expect(out.subarray(BLOCK_SIZE, BLOCK_SIZE + record.length)).toEqual(Buffer.from(record));
        expect(out.subarray(BLOCK_SIZE + record.length, 2 * BLOCK_SIZE).every((b) => b === 0)).toBe(true);
      }),
    );
  });
});
