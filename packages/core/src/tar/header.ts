/**
 * The 512-byte tar header: decoding ustar, POSIX and GNU headers (octal or base-256 numbers) and encoding
 * POSIX ustar headers. Pure: no I/O, no knowledge of layers. The common header is decoded by the addon,
 * which leaves everything else, every error among it, to the JavaScript here.
 */
import { LayerFormatError } from '../errors.js';
import { HEADER_FIELD, tarHeaderFields } from '../native.js';
import { quote } from '../quote.js';

export const BLOCK_SIZE = 512;

/** A header's fields as stored, before PAX or GNU long-name records are applied. */
export interface RawHeader {
  name: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Uint8Array;
  uname: Uint8Array;
  gname: Uint8Array;
  devmajor: number;
  devminor: number;
  /**
   * The ustar prefix field. Empty for GNU headers, whose bytes there are times, except where those do not
   * read as numbers: then it is a prefix an old Go writer put there, read as Go's own reader does.
   */
  prefix: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Where the field at `offset` ends: its first NUL, else its length. A loop: indexOf is a runtime call per field. */
function fieldEnd(block: Uint8Array, offset: number, length: number): number {
  const limit = offset + length;
  let end = offset;
  while (end < limit && block[end] !== 0) end++;
  return end;
}

function field(block: Uint8Array, offset: number, length: number): Uint8Array {
  if (block[offset] === 0) return EMPTY; // most link names, prefixes and GNU fields: no view to make
  return block.subarray(offset, fieldEnd(block, offset, length));
}

/** The error for a numeric field that holds no number. */
function notANumber(block: Uint8Array, offset: number, end: number, what: string): LayerFormatError {
  return new LayerFormatError(`tar header ${what} is not a number: ${quote(Buffer.from(block.subarray(offset, end)).toString('latin1'))}`);
}

/**
 * Reads an octal or base-256 numeric field; throws LAYER_FORMAT on garbage. Octal: the bytes before the
 * first NUL, spaces around them allowed, digits only (none is 0), as Go's and Python's readers agree; a
 * field that starts empty and has digits after its NUL reads as 10 to Go and 0 to Python, so it is refused.
 * Base-256: a first byte of 0x80 (positive) or 0xff (negative), the two that every reader takes.
 */
export function numberField(block: Uint8Array, offset: number, length: number, what: string): number {
  const first = block[offset]!;
  const end = offset + length;
  if (first & 0x80) {
    // GNU/star base-256: big-endian two's complement, the top bit of the first byte is the marker.
    if (first !== 0x80 && first !== 0xff) throw notANumber(block, offset, end, what);
    const negative = first === 0xff;
    let value = BigInt(negative ? first : 0);
    for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(block[offset + i]!);
    if (negative) value -= 1n << BigInt(8 * length);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new LayerFormatError(`tar header ${what} out of range`);
    }
    return Number(value);
  }
  const stop = fieldEnd(block, offset, length);
  let i = offset;
  let last = stop;
  while (i < last && block[i] === 0x20) i++;
  while (last > i && block[last - 1] === 0x20) last--;
  if (i === last) {
    for (let j = stop; j < end; j++) if (block[j] !== 0 && block[j] !== 0x20) throw notANumber(block, offset, end, what);
    return 0;
  }
  let value = 0;
  for (; i < last; i++) {
    const c = block[i]!;
    if (c < 0x30 || c > 0x37) throw notANumber(block, offset, end, what);
    value = value * 8 + (c - 0x30);
  }
  return value;
}

/**
 * The last buffer whose headers were summed, seen as words: one view for all the headers of a chunk, not one
 * each (it keeps that one buffer alive until another is summed).
 */
let wordsBuffer: ArrayBufferLike | undefined;
let words: Uint32Array = new Uint32Array(0);

function wordsOf(buffer: ArrayBufferLike): Uint32Array {
  if (buffer !== wordsBuffer || words.byteLength === 0) {
    wordsBuffer = buffer;
    words = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
  }
  return words;
}

/**
 * The sum of a block's 512 bytes. Where the block is 4-byte aligned (every block of a reader's or writer's
 * buffers), a word at a time: bytes 0 and 2 of each word add up in one 16-bit lane pair, bytes 1 and 3 in
 * another; 128 words of at most 255 per byte cannot carry from one lane into the next.
 */
function blockSum(block: Uint8Array): number {
  if ((block.byteOffset & 3) === 0) {
    const words = wordsOf(block.buffer);
    const first = block.byteOffset >>> 2;
    let even = 0;
    let odd = 0;
    for (let i = first; i < first + BLOCK_SIZE / 4; i++) {
      const word = words[i]!;
      even += word & 0x00ff00ff;
      odd += (word >>> 8) & 0x00ff00ff;
    }
    return (even & 0xffff) + (even >>> 16) + (odd & 0xffff) + (odd >>> 16);
  }
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) sum += block[i]!;
  return sum;
}

/** The header's checksum as writers compute it: the byte sum with the checksum field counted as spaces. */
function unsignedChecksum(block: Uint8Array): number {
  let field = 0;
  for (let i = 148; i < 156; i++) field += block[i]!;
  return blockSum(block) - field + 8 * 0x20;
}

/** The same over signed bytes, as some historic writers did. */
function signedChecksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    sum += b > 127 ? b - 256 : b;
  }
  return sum;
}

/** "ustar\0" (POSIX) or "ustar  \0" (GNU) at byte 257. */
export function magicOf(block: Uint8Array): 'ustar' | 'gnu' | undefined {
  if (block[257] !== 0x75 || block[258] !== 0x73 || block[259] !== 0x74 || block[260] !== 0x61 || block[261] !== 0x72) return undefined;
  if (block[262] === 0) return 'ustar';
  return block[262] === 0x20 && block[263] === 0x20 && block[264] === 0 ? 'gnu' : undefined;
}

/** True for a block of 512 zero bytes, the end-of-archive marker. */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

/** The addon's answer for the last block decoded. */
const fields = new Int32Array(HEADER_FIELD.count);

/** The `length` bytes of `block` from `offset`: a view, or none for an empty field. */
function view(block: Uint8Array, offset: number, length: number): Uint8Array {
  return length === 0 ? EMPTY : block.subarray(offset, offset + length);
}

/** A 12-byte field's number from the addon's two parts (nearly always below 2^30: the low one alone). */
function wide(high: number, low: number): number {
  return high === 0 ? low : high * 2 ** 30 + low;
}

/**
 * Decodes one header block. Throws LAYER_FORMAT when the checksum disagrees (historic signed sums are
 * accepted, as GNU tar does) or a numeric field is not a number.
 *
 * Through the addon: in a fresh process the byte loops below ran interpreted for the first layer's first
 * thousands of headers, and then kept V8's compilers busy beside it (in a first digest of minbase, 20-40 ms
 * of their CPU, on two cores where the hashing thread waits for one).
 */
export function decodeHeader(block: Uint8Array): RawHeader {
  const kind = tarHeaderFields(block, fields);
  if (kind < 0) return decodeHeaderInJavaScript(block);
  return {
    name: view(block, 0, fields[HEADER_FIELD.name]!),
    mode: fields[HEADER_FIELD.mode]!,
    uid: fields[HEADER_FIELD.uid]!,
    gid: fields[HEADER_FIELD.gid]!,
    size: wide(fields[HEADER_FIELD.sizeHigh]!, fields[HEADER_FIELD.sizeLow]!),
    mtime: wide(fields[HEADER_FIELD.mtimeHigh]!, fields[HEADER_FIELD.mtimeLow]!),
    typeflag: String.fromCharCode(fields[HEADER_FIELD.typeflag]!),
    linkname: view(block, 157, fields[HEADER_FIELD.linkname]!),
    uname: view(block, 265, fields[HEADER_FIELD.uname]!),
    gname: view(block, 297, fields[HEADER_FIELD.gname]!),
    devmajor: fields[HEADER_FIELD.devmajor]!,
    devminor: fields[HEADER_FIELD.devminor]!,
    prefix: view(block, 345, fields[HEADER_FIELD.prefix]!),
  };
}

/** `decodeHeader` in JavaScript alone: what the addon leaves to it, and what its decoding is tested against. */
export function decodeHeaderInJavaScript(block: Uint8Array): RawHeader {
  const stored = numberField(block, 148, 8, 'checksum');
  const computed = unsignedChecksum(block);
  if (stored !== computed && stored !== signedChecksum(block)) {
    throw new LayerFormatError(`tar header checksum mismatch (stored ${stored}, computed ${computed})`);
  }
  const magic = magicOf(block);
  const isGnu = magic === 'gnu';
  const isUstar = magic === 'ustar';
  const typeflag = String.fromCharCode(block[156]!); // '\0' kept apart from '0': pre-POSIX directories differ
  return {
    name: field(block, 0, 100),
    mode: numberField(block, 100, 8, 'mode'),
    uid: numberField(block, 108, 8, 'uid'),
    gid: numberField(block, 116, 8, 'gid'),
    size: numberField(block, 124, 12, 'size'),
    mtime: numberField(block, 136, 12, 'mtime'),
    typeflag,
    linkname: field(block, 157, 100),
    uname: isGnu || isUstar ? field(block, 265, 32) : EMPTY,
    gname: isGnu || isUstar ? field(block, 297, 32) : EMPTY,
    devmajor: isGnu || isUstar ? numberField(block, 329, 8, 'devmajor') : 0,
    devminor: isGnu || isUstar ? numberField(block, 337, 8, 'devminor') : 0,
    prefix: isUstar ? field(block, 345, 155) : isGnu ? legacyGoPrefix(block) : EMPTY,
  };
}

/** True when the 12-byte GNU time field at `offset` reads as a number, by Go's rules (empty counts). */
function readsAsGoNumber(block: Uint8Array, offset: number): boolean {
  if (block[offset] === 0 || (block[offset]! & 0x80) !== 0) return true; // unset, or base-256
  let start = offset;
  let end = offset + 12;
  while (start < end && (block[start] === 0x20 || block[start] === 0)) start++;
  while (end > start && (block[end - 1] === 0x20 || block[end - 1] === 0)) end--;
  if (start === end) return true; // only spaces: zero
  const nul = block.indexOf(0, start);
  if (nul >= 0 && nul < end) end = nul;
  for (let i = start; i < end; i++) if (block[i]! < 0x30 || block[i]! > 0x37) return false;
  return true;
}

/**
 * Go before 1.8 wrote a ustar prefix into GNU headers, where GNU keeps atime and ctime. Go's reader (so
 * containerd's and moby's) reads it back as a prefix when those fields do not read as numbers and it is
 * ASCII: strata does the same, so it sees the path the runtimes write.
 */
function legacyGoPrefix(block: Uint8Array): Uint8Array {
  if (readsAsGoNumber(block, 345) && readsAsGoNumber(block, 357)) return EMPTY;
  const prefix = field(block, 345, 155);
  for (let i = 0; i < prefix.length; i++) if (prefix[i]! >= 0x80) return EMPTY;
  return prefix;
}

/** What `encodeHeader` writes; byte fields must already fit (the writer moves long values to PAX). */
export interface HeaderFields {
  name: Uint8Array;
  prefix?: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname?: Uint8Array;
  uname?: Uint8Array;
  gname?: Uint8Array;
  devmajor?: number;
  devminor?: number;
}

/** The largest value an octal field of `length` bytes holds (one byte is the terminator). */
export function octalLimit(length: number): number {
  return 8 ** (length - 1) - 1;
}

/** Octal limits of the field widths in use (8 and 12 bytes). */
export const OCTAL_LIMIT_8 = octalLimit(8);
export const OCTAL_LIMIT_12 = octalLimit(12);
const USTAR_MAGIC = Uint8Array.from([0x75, 0x73, 0x74, 0x61, 0x72, 0x00, 0x30, 0x30]); // "ustar\0" "00"

function writeNumber(block: Uint8Array, offset: number, length: number, value: number): void {
  if (value >= 0 && value <= (length === 8 ? OCTAL_LIMIT_8 : length === 12 ? OCTAL_LIMIT_12 : octalLimit(length))) {
    // Zero-padded octal, right to left, in integer operations: a float's `% 8` is a call into C, once per
    // digit of every field of every header. 2^30 is 8^10, so the low 30 bits are the last ten digits and
    // what is above them (under 2^23, for a safe integer) the digits before.
    let high = Math.floor(value / 0x40000000);
    let low = (value - high * 0x40000000) | 0;
    let i = offset + length - 2;
    for (const stop = Math.max(offset, i - 9); i >= stop; i--) {
      block[i] = 0x30 + (low & 7);
      low >>>= 3;
    }
    for (; i >= offset; i--) {
      block[i] = 0x30 + (high & 7);
      high >>>= 3;
    }
    block[offset + length - 1] = 0;
    return;
  }
  // Base-256 for what octal cannot hold; PAX carries the value too, for readers without base-256.
  let v = BigInt(value);
  if (v < 0n) v += 1n << BigInt(8 * length);
  for (let i = length - 1; i >= 0; i--) {
    block[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = value < 0 ? 0xff : 0x80;
}

/** Copies `bytes` (at most `max` of them) into `block` at `offset`. */
function putBytes(block: Uint8Array, offset: number, bytes: Uint8Array, max: number): void {
  block.set(bytes.length <= max ? bytes : bytes.subarray(0, max), offset);
}

/** Encodes a POSIX ustar header into `block` (512 bytes, zeroed by the caller). */
export function encodeHeader(block: Uint8Array, fields: HeaderFields): void {
  putBytes(block, 0, fields.name, 100);
  writeNumber(block, 100, 8, fields.mode);
  writeNumber(block, 108, 8, fields.uid);
  writeNumber(block, 116, 8, fields.gid);
  writeNumber(block, 124, 12, fields.size);
  writeNumber(block, 136, 12, fields.mtime);
  block[156] = fields.typeflag.charCodeAt(0);
  if (fields.linkname !== undefined && fields.linkname.length > 0) putBytes(block, 157, fields.linkname, 100);
  block.set(USTAR_MAGIC, 257);
  if (fields.uname !== undefined && fields.uname.length > 0) putBytes(block, 265, fields.uname, 32);
  if (fields.gname !== undefined && fields.gname.length > 0) putBytes(block, 297, fields.gname, 32);
  writeNumber(block, 329, 8, fields.devmajor ?? 0);
  writeNumber(block, 337, 8, fields.devminor ?? 0);
  if (fields.prefix !== undefined && fields.prefix.length > 0) putBytes(block, 345, fields.prefix, 155);
  // The checksum counts its own field, still zero here, as spaces.
  let sum = blockSum(block) + 8 * 0x20;
  for (let i = 153; i >= 148; i--) {
    block[i] = 0x30 + (sum & 7);
    sum >>>= 3;
  }
  block[154] = 0;
  block[155] = 0x20;
}
