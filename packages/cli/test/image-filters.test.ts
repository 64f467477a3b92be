/**
 * `image ls` and `image prune --filter`'s parsing: the times Docker's timestamp parser takes (durations in
 * Go's form, Unix seconds, RFC 3339 dates, local time where no zone is named), its label filters, `!` on
 * either side, and the filters only `image ls` takes.
 */
import { describe, expect, it } from 'vitest';
import { LIST_FILTERS, parseImageFilters, parseTimestamp, PRUNE_FILTERS } from '../src/image-filters.js';

const parsePruneFilters = (filters: string[], at: Date) => parseImageFilters(filters, PRUNE_FILTERS, at);

const now = new Date('2026-06-15T12:00:00Z');

describe('image filters', () => {
  it('reads times as Docker does', () => {
    expect(parseTimestamp('24h', now).toISOString()).toBe('2026-06-14T12:00:00.000Z');
    expect(parseTimestamp('1h30m', now).toISOString()).toBe('2026-06-15T10:30:00.000Z');
    expect(parseTimestamp('1.5h', now).toISOString()).toBe('2026-06-15T10:30:00.000Z');
    expect(parseTimestamp('1500ms500000\u00b5s', now).toISOString()).toBe('2026-06-15T11:59:58.000Z');
    expect(parseTimestamp('1700000000', now).toISOString()).toBe('2023-11-14T22:13:20.000Z');
    expect(parseTimestamp('1700000000.5', now).toISOString()).toBe('2023-11-14T22:13:20.500Z');
    expect(parseTimestamp('2026-01-02T03:04:05Z', now).toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(parseTimestamp('2026-01-02T03:04:05.25+02:00', now).toISOString()).toBe('2026-01-02T01:04:05.250Z');
    expect(parseTimestamp('2026-01-02', now).getTime()).toBe(new Date(2026, 0, 2).getTime()); // local midnight
    expect(parseTimestamp('2026-01-02T03:04', now).getTime()).toBe(new Date(2026, 0, 2, 3, 4).getTime());
    for (const bad of ['yesterday', '-1h', '2026-13-01', '2026-01-02T03', '1d']) expect(() => parseTimestamp(bad, now), bad).toThrow(/is not a time/);
  });

  it('reads until and label filters, the earliest until winning', () => {
    expect(parsePruneFilters([], now)).toEqual({});
    expect(parsePruneFilters(['until=1h', 'until=2h'], now)).toEqual({ until: new Date('2026-06-15T10:00:00Z') });
    expect(parsePruneFilters(['label=a', 'label=b=c', 'label!=d', 'label!=e=f', 'label=g!=h'], now).labels).toEqual([
      { key: 'a', negate: false },
      { key: 'b', value: 'c', negate: false },
      { key: 'd', negate: true },
      { key: 'e', value: 'f', negate: true },
      { key: 'g', value: 'h', negate: true },
    ]);
    for (const bad of ['until', 'until=', 'since=1h', 'dangling=true', 'label==x']) expect(() => parsePruneFilters([bad], now), bad).toThrow();
  });

  it("reads image ls's filters: dangling, before, since, reference", () => {
    expect(parseImageFilters(['dangling=TRUE', 'dangling=1', 'before=a', 'before=b:1', 'since=c', 'reference=x*', 'reference=*/y', 'until=1h'], LIST_FILTERS, now)).toEqual({
      dangling: true,
      before: ['a', 'b:1'],
      since: ['c'],
      references: ['x*', '*/y'],
      until: new Date('2026-06-15T11:00:00Z'),
    });
    expect(parseImageFilters(['dangling=false'], LIST_FILTERS, now)).toEqual({ dangling: false });
    for (const bad of ['dangling=yes', 'before=', 'reference', 'bogus=1']) expect(() => parseImageFilters([bad], LIST_FILTERS, now), bad).toThrow();
    expect(() => parseImageFilters(['dangling=true', 'dangling=false'], LIST_FILTERS, now)).toThrow(/both true and false/);
  });
});
