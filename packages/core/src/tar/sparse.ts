/**
 * GNU sparse files: a file stored as the fragments of it that hold data, with a map of where each lies;
 * the rest of the file is holes, which read as zeros. GNU tar writes the map in four forms, all read here
 * as Go's archive/tar (containerd's and moby's reader) reads them: the old GNU header (type `S`: the map in
 * the header and in extension blocks after it), PAX 0.0 and 0.1 (the map in PAX records; `decodePax` turns
 * 0.0 into 0.1) and PAX 1.0 (the map at the start of the entry's data). Maps only: the reader expands the
 * content (see `holeChunks`).
 */
import { LayerFormatError } from '../errors.js';
import { quote } from '../quote.js';
import { BLOCK_SIZE, magicOf, numberField } from './header.js';
import { SPARSE_MAP } from './pax.js';

/** A stretch of a sparse file that holds data, stored in the archive in map order. */
export interface Fragment {
  readonly offset: number;
  readonly length: number;
}

/** A sparse file as its header or records describe it: its real name and size, and its map. */
export interface SparseFile {
  /** Where the map is: in the records (0.0, 0.1) or at the start of the entry's data (1.0). */
  format: 'records' | 'data';
  /** The map (empty until read where it is in the data). */
  fragments: Fragment[];
  name: Uint8Array | undefined;
  size: number | undefined;
}

function latin1(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? '' : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** A decimal as Go's strconv.ParseInt reads it (a sign, then digits); LAYER_FORMAT otherwise. */
function integer(text: string, what: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) throw new LayerFormatError(`sparse file's ${what} is not a number: ${quote(text.slice(0, 40))}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new LayerFormatError(`sparse file's ${what} is out of range: ${quote(text.slice(0, 40))}`);
  return value;
}

/** Pairs of numbers (offset, length) as fragments. */
function fragmentsOf(numbers: readonly string[], what: string): Fragment[] {
  const fragments: Fragment[] = [];
  for (let i = 0; i + 1 < numbers.length; i += 2) fragments.push({ offset: integer(numbers[i]!, what), length: integer(numbers[i + 1]!, what) });
  return fragments;
}

/**
 * The sparse file an entry's PAX records describe, or undefined when they describe none. As in Go: the
 * version records decide (0.0, 0.1 or 1.0; any other version is not a sparse file), and without them a
 * `GNU.sparse.map` record does. Throws LAYER_FORMAT for a malformed size or map.
 */
export function paxSparse(records: ReadonlyMap<string, Uint8Array>): SparseFile | undefined {
  const major = latin1(records.get('GNU.sparse.major'));
  const minor = latin1(records.get('GNU.sparse.minor'));
  const map = latin1(records.get(SPARSE_MAP));
  let format: SparseFile['format'];
  if (major === '0' && (minor === '0' || minor === '1')) format = 'records';
  else if (major === '1' && minor === '0') format = 'data';
  else if (major !== '' || minor !== '' || map === '') return undefined;
  else format = 'records';

  const sizeText = latin1(records.get('GNU.sparse.size')) || latin1(records.get('GNU.sparse.realsize'));
  const size = sizeText === '' ? undefined : integer(sizeText, 'size');
  const nameRecord = records.get('GNU.sparse.name');
  const name = nameRecord === undefined || nameRecord.length === 0 ? undefined : nameRecord;
  if (format === 'data') return { format, fragments: [], name, size };

  const count = integer(latin1(records.get('GNU.sparse.numblocks')), 'fragment count');
  const numbers = map === '' ? [] : map.split(',');
  if (count < 0 || numbers.length !== 2 * count) throw new LayerFormatError(`sparse map holds ${numbers.length} numbers for ${count} fragments`);
  return { format, fragments: fragmentsOf(numbers, 'map'), name, size };
}

/** Fragments from a map block: `count` slots of 24 bytes (octal or base-256 offset, then length) from `start`. */
function blockFragments(block: Uint8Array, start: number, count: number, into: Fragment[]): void {
  for (let i = 0; i < count; i++) {
    const at = start + 24 * i;
    if (block[at] === 0) break; // the first empty slot ends the block's map, as GNU tar and Go read it
    into.push({ offset: numberField(block, at, 12, 'sparse offset'), length: numberField(block, at + 12, 12, 'sparse length') });
  }
}

/** An old GNU sparse header's map: its real size, the fragments it holds, and whether extension blocks follow. */
export function oldGnuSparse(block: Uint8Array): { size: number; fragments: Fragment[]; extended: boolean } {
  // star writes a different sparse header under the same type flag: only GNU's layout is read.
  if (magicOf(block) !== 'gnu') throw new LayerFormatError("a sparse file's header (type 'S') is not a GNU header");
  const fragments: Fragment[] = [];
  blockFragments(block, 386, 4, fragments);
  return { size: numberField(block, 483, 12, 'sparse real size'), fragments, extended: block[482] !== 0 };
}

/** Adds an old GNU extension block's fragments to `fragments`; true when another extension block follows. */
export function oldGnuSparseExtension(block: Uint8Array, fragments: Fragment[]): boolean {
  blockFragments(block, 0, 21, fragments);
  return block[504] !== 0;
}

/**
 * The PAX 1.0 map at the start of an entry's data: newline-ended decimals (the fragment count, then an
 * offset and a length per fragment), in whole blocks. Fed a block at a time until it has them all.
 */
export class DataSparseMap {
  #text = '';
  #newlines = 0;
  #count = -1;

  /** Bytes read so far (whole blocks). */
  get bytes(): number {
    return this.#text.length;
  }

  /** Takes the next block of the entry's data: the fragments once the map is complete, else undefined. */
  add(block: Uint8Array): Fragment[] | undefined {
    const text = latin1(block.subarray(0, BLOCK_SIZE));
    this.#text += text;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.#newlines++;
    if (this.#count < 0) {
      if (this.#newlines === 0) return undefined;
      this.#count = integer(this.#text.slice(0, this.#text.indexOf('\n')), 'fragment count');
      if (this.#count < 0) throw new LayerFormatError(`sparse map's fragment count is negative: ${this.#count}`);
    }
    if (this.#newlines < 1 + 2 * this.#count) return undefined;
    const numbers = this.#text.split('\n').slice(1, 1 + 2 * this.#count);
    return fragmentsOf(numbers, 'map');
  }
}

/**
 * Throws LAYER_FORMAT unless `fragments` lie in order, without overlap, inside a file of `size` bytes, and
 * their lengths add up to the `stored` bytes the archive holds for them (Go fails such a file when it is
 * read; strata before anything is written, so that reading, listing and applying it agree).
 */
export function checkFragments(fragments: readonly Fragment[], size: number, stored: number, path: string): void {
  let end = 0;
  let total = 0;
  for (const { offset, length } of fragments) {
    if (offset < 0 || length < 0) throw new LayerFormatError(`sparse map of ${quote(path)} has a negative offset or length`, { path });
    if (offset < end) throw new LayerFormatError(`sparse map of ${quote(path)} has fragments out of order or overlapping`, { path });
    end = offset + length;
    if (end > size) throw new LayerFormatError(`sparse map of ${quote(path)} reaches past the file's size (${size})`, { path });
    total += length;
  }
  if (total !== stored) {
    throw new LayerFormatError(`sparse file ${quote(path)} stores ${stored} bytes where its map names ${total}`, { path });
  }
}

/** Zeros, shared by every hole: a chunk viewing them is a hole, which a writer may seek past (`isHole`). */
let holeBuffer: Uint8Array | undefined;
const HOLE_CHUNK = 1024 * 1024;

/** `length` bytes of a hole, as chunks of the shared zeros. */
export function* holeChunks(length: number): Generator<Uint8Array> {
  holeBuffer ??= new Uint8Array(HOLE_CHUNK);
  for (let left = length; left > 0; left -= HOLE_CHUNK) yield holeBuffer.subarray(0, Math.min(left, HOLE_CHUNK));
}

/**
 * True when `chunk` of an entry's content is part of a sparse file's hole: zeros that a writer may leave
 * unwritten (seek past, then set the file's size), as GNU tar extracts sparse files. Its bytes are zeros
 * either way; never write into it.
 */
export function isHole(chunk: Uint8Array): boolean {
  return holeBuffer !== undefined && chunk.buffer === holeBuffer.buffer;
}
