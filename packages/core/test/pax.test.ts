import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodePax, encodePax, formatPaxTime, parsePaxTime } from '../src/tar/pax.js';

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
    for (const bad of ['', '-', '.5', '1.', '1.2.3', '1e5', ' 1', '1 ', '+1', '--1', '99999999999999999999']) {
      expect(() => parsePaxTime(bad), bad).toThrow(expect.objectContaining({ code: 'LAYER_FORMAT' }));
    }
  });
});
