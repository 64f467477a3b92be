/**
 * PAX extended-header records (`"<len> <key>=<value>\n"`), kept as raw bytes: xattr values such as
 * `security.capability` are binary and must survive byte for byte, which a string decoder would break.
 */
import { LayerFormatError } from '../errors.js';
import type { Timestamp } from '../entry.js';
import { asciiText, decimal } from './ascii.js';

/** The record GNU's sparse format 0.0 repeats once per fragment, offset then length (see `decodePax`). */
const SPARSE_OFFSET = 'GNU.sparse.offset';
const SPARSE_NUMBYTES = 'GNU.sparse.numbytes';
/** The record GNU's sparse format 0.1 keeps the whole map in: `offset,length,offset,length…`. */
export const SPARSE_MAP = 'GNU.sparse.map';

/**
 * Parses PAX records into key → raw value bytes; later records win. GNU's sparse format 0.0 is the one
 * place where order and repetition matter: its `GNU.sparse.offset` and `GNU.sparse.numbytes` records,
 * which must alternate, are joined into one `GNU.sparse.map` record (the 0.1 form), as Go's reader joins
 * them. Throws LAYER_FORMAT when malformed.
 */
export function decodePax(data: Uint8Array): Map<string, Uint8Array> {
  const records = new Map<string, Uint8Array>();
  let sparseMap: Uint8Array[] | undefined;
  let offset = 0;
  while (offset < data.length) {
    if (data[offset] === 0) break; // NUL padding some writers leave at the end
    const space = data.indexOf(0x20, offset);
    if (space < 0) throw new LayerFormatError('PAX record without a length');
    const length = decimal(data, offset, space);
    if (length < 0 || length <= space - offset + 1 || offset + length > data.length) {
      throw new LayerFormatError('PAX record length is invalid');
    }
    const end = offset + length;
    if (data[end - 1] !== 0x0a) throw new LayerFormatError('PAX record is not newline-terminated');
    const equals = data.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end) throw new LayerFormatError('PAX record without a key');
    const key = keyText(data.subarray(space + 1, equals));
    const value = data.subarray(equals + 1, end - 1);
    offset = end;
    if (key === SPARSE_OFFSET || key === SPARSE_NUMBYTES) {
      sparseMap ??= [];
      if ((key === SPARSE_OFFSET) !== (sparseMap.length % 2 === 0) || value.includes(0x2c)) {
        throw new LayerFormatError('PAX sparse map records (GNU 0.0) out of order or malformed');
      }
      sparseMap.push(value);
      continue;
    }
    records.set(key, value);
  }
  if (sparseMap !== undefined) records.set(SPARSE_MAP, Buffer.from(sparseMap.map((value) => Buffer.from(value).toString('latin1')).join(','), 'latin1'));
  return records;
}

const utf8 = new TextDecoder();

/** A record key: ASCII (every standard key) without a decoder, anything else as UTF-8. */
function keyText(bytes: Uint8Array): string {
  return asciiText(bytes) ?? utf8.decode(bytes);
}

const encoder = new TextEncoder();

/** The length prefix of a record whose other bytes number `body`: it counts its own digits too. */
export function paxRecordLength(body: number): number {
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length = body + String(length).length;
  return length;
}

/** Encodes records in the given order; the length prefix counts itself, as the format requires. */
export function encodePax(records: ReadonlyArray<readonly [string, Uint8Array | string]>): Uint8Array {
  if (records.every(([, value]) => typeof value === 'string')) {
    // All text (the common case: times, long names): one string, encoded once.
    let text = '';
    for (const [key, value] of records) {
      const record = ` ${key}=${value as string}\n`;
      text += `${paxRecordLength(Buffer.byteLength(record))}${record}`;
    }
    return Buffer.from(text, 'utf8');
  }
  const parts: Uint8Array[] = [];
  for (const [key, raw] of records) {
    const value = typeof raw === 'string' ? encoder.encode(raw) : raw;
    const length = paxRecordLength(encoder.encode(` ${key}=`).length + value.length + 1);
    parts.push(encoder.encode(`${length} ${key}=`), value, encoder.encode('\n'));
  }
  return Buffer.concat(parts);
}

/** Formats a timestamp as a PAX time: decimal seconds, the fraction without trailing zeros. */
export function formatPaxTime(time: Timestamp): string {
  if (time.nsec === 0) return String(time.sec);
  // A negative time with a fraction: -1.5 s is { sec: -2, nsec: 5e8 }.
  const negative = time.sec < 0;
  const whole = negative ? time.sec + 1 : time.sec;
  const frac = negative ? 1_000_000_000 - time.nsec : time.nsec;
  let digits = String(frac).padStart(9, '0');
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 0x30) end--;
  digits = digits.slice(0, end);
  return `${negative && whole === 0 ? '-' : ''}${whole}.${digits}`;
}

/**
 * Parses a PAX time (`[+-]sec[.fraction]`) as Go's archive/tar reads it, and so containerd and moby: a sign
 * before the seconds, and a point with no digits after it, are accepted. Throws LAYER_FORMAT when malformed.
 */
export function parsePaxTime(text: string): Timestamp {
  // By hand, not by a regular expression: nearly every entry of a layer with sub-second times has one.
  const sign = text.charCodeAt(0);
  const negative = sign === 0x2d;
  let i = negative || sign === 0x2b ? 1 : 0;
  const wholeStart = i;
  let whole = 0;
  for (; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) break;
    whole = whole * 10 + digit;
  }
  const wholeEnd = i;
  let nsec = 0;
  if (i < text.length && text.charCodeAt(i) === 0x2e) {
    let scale = 100_000_000;
    for (i++; i < text.length; i++) {
      const digit = text.charCodeAt(i) - 0x30;
      if (digit < 0 || digit > 9) break;
      nsec += digit * scale; // digits past nanoseconds are checked, then dropped
      scale = scale > 1 ? scale / 10 : 0;
    }
  }
  if (wholeEnd === wholeStart || i !== text.length) throw new LayerFormatError(`PAX time is invalid: ${JSON.stringify(text)}`);
  if (!Number.isSafeInteger(whole)) throw new LayerFormatError('PAX time out of range');
  if (!negative) return { sec: whole, nsec };
  return nsec === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1_000_000_000 - nsec };
}
