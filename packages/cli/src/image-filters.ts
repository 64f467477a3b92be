/**
 * `image ls --filter`, `image prune --filter` (and `build cache prune --filter until=`), as the docker CLI
 * spells its filters: `dangling=true|false`, `label=<key>[=<value>]` and `label!=<key>[=<value>]`
 * (`label=<key>!=<value>` too), `before=<image>`, `since=<image>`, `reference=<pattern>` and
 * `until=<time>`. A time is a duration back from now in Go's
 * form (`24h`, `1h30m`), Unix seconds (`1700000000`, `1700000000.5`) or an RFC 3339 date or date-time,
 * local time where it names no zone, as Docker's timestamp parser reads them.
 */
import type { LabelFilter, ListOptions } from '@strata/images';
import { UsageError } from './format.js';

/** A filter's name, as `--filter <name>=<value>` gives it. */
export type ImageFilterName = 'dangling' | 'label' | 'label!' | 'before' | 'since' | 'reference' | 'until';

/** What `image ls` takes; `image prune` takes `until` and the label filters. */
export const LIST_FILTERS: readonly ImageFilterName[] = ['dangling', 'label', 'label!', 'before', 'since', 'reference', 'until'];
export const PRUNE_FILTERS: readonly ImageFilterName[] = ['until', 'label', 'label!'];

/**
 * The options of `Images.list` (and of `prune`, a subset) from the `--filter` values, each of a name in
 * `accepted`; `now` is the time durations count back from. Several of a name must all pass, as in Docker,
 * except `reference`, of which one must.
 */
export function parseImageFilters(filters: readonly string[], accepted: readonly ImageFilterName[], now = new Date()): ListOptions {
  let until: Date | undefined;
  let dangling: boolean | undefined;
  const labels: LabelFilter[] = [];
  const lists = { before: [] as string[], since: [] as string[], reference: [] as string[] };
  for (const filter of filters) {
    const [name, value] = splitOnce(filter, '=');
    if (!(accepted as readonly string[]).includes(name)) throw new UsageError(`--filter ${filter}: the filters here are ${accepted.join(', ')}`);
    if (value === undefined || value === '') throw new UsageError(`--filter ${filter}: a filter is name=value`);
    if (name === 'until') {
      const time = parseTimestamp(value, now);
      if (until === undefined || time < until) until = time; // several: the earliest, as all must pass
    } else if (name === 'label' || name === 'label!') {
      labels.push(labelFilter(value, name === 'label!'));
    } else if (name === 'dangling') {
      const wanted = /^(?:true|1)$/i.test(value) ? true : /^(?:false|0)$/i.test(value) ? false : undefined;
      if (wanted === undefined) throw new UsageError(`--filter ${filter}: dangling is true or false`);
      if (dangling !== undefined && dangling !== wanted) throw new UsageError('--filter dangling: given both true and false');
      dangling = wanted;
    } else {
      lists[name as keyof typeof lists].push(value);
    }
  }
  return {
    ...(until !== undefined ? { until } : {}),
    ...(labels.length > 0 ? { labels } : {}),
    ...(dangling !== undefined ? { dangling } : {}),
    ...(lists.before.length > 0 ? { before: lists.before } : {}),
    ...(lists.since.length > 0 ? { since: lists.since } : {}),
    ...(lists.reference.length > 0 ? { references: lists.reference } : {}),
  };
}

function labelFilter(text: string, negate: boolean): LabelFilter {
  const [rawKey, value] = splitOnce(text, '=');
  // `label=key!=value` is `label!=key=value`.
  const flipped = rawKey.endsWith('!');
  const key = flipped ? rawKey.slice(0, -1) : rawKey;
  if (key === '') throw new UsageError(`--filter label: ${JSON.stringify(text)} names no label`);
  return { key, ...(value !== undefined ? { value } : {}), negate: negate !== flipped };
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, '\u03bcs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = String.raw`(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)`;
const DURATION = new RegExp(`^(?:${PART})+$`, 'u');
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/** A time as Docker's filters take one (see the module's comment). */
export function parseTimestamp(text: string, now: Date): Date {
  if (DURATION.test(text)) {
    let ms = 0;
    for (const [, amount, unit] of text.matchAll(new RegExp(PART, 'gu'))) ms += Number(amount) * DURATION_UNITS[unit!]!;
    return new Date(now.getTime() - ms);
  }
  if (/^\d+(?:\.\d+)?$/.test(text)) return new Date(Number(text) * 1000);
  const date = DATE.exec(text);
  if (date) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone] = date;
    const ms = Math.floor(Number(`0${fraction || '.0'}`) * 1000);
    const time = zone
      ? new Date(`${y}-${mo}-${d}T${h.padStart(2, '0')}:${mi.padStart(2, '0')}:${s.padStart(2, '0')}.${String(ms).padStart(3, '0')}${zone}`)
      : new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
    if (!Number.isNaN(time.getTime()) && Number(mo) >= 1 && Number(mo) <= 12 && Number(d) >= 1 && Number(d) <= 31) return time;
  }
  throw new UsageError(`${JSON.stringify(text)} is not a time: a duration (24h, 90m), Unix seconds or an RFC 3339 date`);
}
