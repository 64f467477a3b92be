/**
 * An independent, deliberately naive tar builder for crafting test archives, hostile ones included.
 * It shares no code with strata's writer, so tests of the reader do not lean on the code under test.
 */
import { createHash } from 'node:crypto';

export interface RawEntry {
  name: string;
  /** The type flag byte (any string's first character; '\0' for the old regular-file flag). */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  data?: Uint8Array | string;
  /** Override the size field (to lie about the data). */
  size?: number;
  /** PAX records to put in an `x` header before this entry (as pairs where a key repeats). */
  pax?: Record<string, string | Uint8Array> | Array<[string, string | Uint8Array]>;
  /** GNU magic instead of POSIX ustar. */
  gnu?: boolean;
  /** No magic at all (a V7 header). */
  v7?: boolean;
  /** The ustar prefix field (bytes 345..500), written whatever the magic. */
  prefix?: string;
  /** Changes the header before its checksum is computed (base-256 numbers, garbage in fields). */
  patch?: (header: Buffer) => void;
  /** PAX global records to put in a `g` header before this entry. */
  globals?: Record<string, string | Uint8Array>;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecords(records: Record<string, string | Uint8Array> | Array<[string, string | Uint8Array]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Array.isArray(records) ? records : Object.entries(records)) {
    const v = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
    const rest = Buffer.byteLength(` ${key}=`) + v.length + 1;
    let len = rest + String(rest).length;
    if (String(len).length !== String(rest).length) len = rest + String(len).length;
    parts.push(Buffer.from(`${len} ${key}=`), v, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

export function rawHeader(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(e.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.linkname) h.write(e.linkname, 157, 100, 'utf8');
  if (!e.v7) {
    h.write(e.gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
    h.write(octal(e.devmajor ?? 0, 8), 329, 'latin1');
    h.write(octal(e.devminor ?? 0, 8), 337, 'latin1');
  }
  if (e.prefix !== undefined) h.write(e.prefix, 345, 155, 'utf8');
  e.patch?.(h);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7), 148, 'latin1');
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/** Builds an archive; `end: false` leaves off the end-of-archive blocks. */
export function rawTar(entries: RawEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.globals) {
      const body = paxRecords(e.globals);
      parts.push(rawHeader({ name: 'GlobalHead', type: 'g' }, body.length), body, pad(body.length));
    }
    if (e.pax) {
      const body = paxRecords(e.pax);
      parts.push(rawHeader({ name: 'PaxHeader', type: 'x' }, body.length), body, pad(body.length));
    }
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    parts.push(rawHeader(e, e.size ?? data.length), data, pad(data.length));
  }
  if (options.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A GNU sparse map slot (offset, then length: 12 octal bytes each) at `at` of a header or extension block. */
export function sparseSlot(block: Buffer, at: number, offset: number, length: number): void {
  block.write(octal(offset, 12), at, 'latin1');
  block.write(octal(length, 12), at + 12, 'latin1');
}

/**
 * An old GNU sparse file (type `S`) of `size` bytes holding `fragments` (offset and data, in order): four
 * slots in the header, the rest in extension blocks of 21 between the header and the data.
 */
export function oldGnuSparse(name: string, size: number, fragments: Array<[number, string]>, extra: Partial<RawEntry> = {}): RawEntry {
  const inHeader = fragments.slice(0, 4);
  const extensions: Buffer[] = [];
  for (let i = 4; i < fragments.length; i += 21) {
    const block = Buffer.alloc(512);
    fragments.slice(i, i + 21).forEach(([offset, data], slot) => sparseSlot(block, 24 * slot, offset, data.length));
    if (i + 21 < fragments.length) block[504] = 1;
    extensions.push(block);
  }
  const data = fragments.map(([, data]) => data).join('');
  return {
    name,
    type: 'S',
    gnu: true,
    data: Buffer.concat([...extensions, Buffer.from(data)]),
    size: Buffer.byteLength(data),
    patch: (h) => {
      inHeader.forEach(([offset, data], slot) => sparseSlot(h, 386 + 24 * slot, offset, data.length));
      if (extensions.length > 0) h[482] = 1;
      h.write(octal(size, 12), 483, 'latin1');
    },
    ...extra,
  };
}

/** A GNU PAX 0.1 sparse file: its map (`offset,length,…`) and real size in PAX records, `data` its fragments. */
export function sparse01(name: string, size: number, map: string, data: string, numblocks = String(map === '' ? 0 : map.split(',').length / 2)): RawEntry {
  const pax = { 'GNU.sparse.major': '0', 'GNU.sparse.minor': '1', 'GNU.sparse.size': String(size), 'GNU.sparse.map': map, 'GNU.sparse.numblocks': numblocks };
  return { name, data, pax };
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
