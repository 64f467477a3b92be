/**
 * A seeded fuzz of the layer reader: fast-check builds tar streams from header fields (types, sizes that
 * lie, numbers in odd encodings, long names by ustar prefix, PAX and GNU records), PAX records, truncation
 * points, flipped bytes and compressed framing, and checks, for every stream:
 * - `ls` and `digest` either both accept or both refuse, with the same code; `apply` refuses whenever they
 *   do, and accepts whenever they accept and the entries make a tree (no hardlink to nothing, no entry
 *   below a file or a symlink);
 * - every refusal is a typed error;
 * - `apply` writes nothing outside its target, and leaves no fresh target behind when it fails;
 * - an accepted stream lists the same entries as Go's archive/tar (the reader under containerd and moby),
 *   and as Python's tarfile where Python and Go agree; neither shares code with strata.
 * `STRATA_FUZZ_RUNS` sets the number of streams (default 150), `STRATA_SEED` the seed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isStrataError, type Entry } from '@strata/core';
import { parentOf, ROOT } from '../packages/core/src/path.js';
import { needs } from './helpers/oracle.js';
import { pythonList } from './helpers/python-tar.js';
import { goEntryType, goLayerPath, goList, type GoEntry } from './helpers/go-tar.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';
import { codeOf, threeWays, type Outcome } from './helpers/three-ways.js';

const RUNS = Number(process.env.STRATA_FUZZ_RUNS ?? 150);
const work = mkdtempSync(join(tmpdir(), 'strata-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const NAMES = ['a', 'b', 'dir', 'dir/x', 'dir/y', 'é', 'a b', `long/${'n'.repeat(120)}`, `${'p'.repeat(90)}/${'q'.repeat(60)}`];
const LINKS = ['a', 'b', 'dir/x', '../up', '/abs', ''];

/** `arb` about one time in five, else undefined: each corruption rare enough that many streams stay whole. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
}

/** Odd but legal and illegal renderings of small numbers in an 8-byte field. */
const NUMBER_FIELDS = ['0000644\0', '644 \0\0\0\0', '  644\0  ', '0000644 ', '\0\0\0\0\0\0\0\0', '644\0junk', '64 4\0\0\0\0', '0o644\0\0\0', '+644\0\0\0\0', '\x80\0\0\0\0\0\x01\xa4'];

/** One entry as headers: a GNU long-name record and the entry's own header, or just the header. */
const entryArb: fc.Arbitrary<RawEntry[]> = fc
  .record({
    name: fc.constantFrom(...NAMES),
    type: fc.constantFrom('0', '0', '0', '\0', '5', '2', '1', '6', '3', '7'),
    data: fc.constantFrom('', 'x', 'hello\n', 'y'.repeat(700)),
    lie: sometimes(fc.constantFrom(0, 1, 511, 512, 513, 2048)),
    linkname: fc.constantFrom(...LINKS),
    format: fc.constantFrom('ustar', 'ustar', 'ustar', 'gnu', 'gnu', 'v7', 'pax', 'pax', 'gnu-long'),
    mode: sometimes(fc.constantFrom(...NUMBER_FIELDS)),
    pax: sometimes(
      fc.dictionary(fc.constantFrom('mtime', 'uid', 'size', 'linkpath', 'SCHILY.xattr.user.k', 'uname', 'comment'), fc.constantFrom('1', '1700000000.5', '-1', 'x', '12a', '', '0', 'a/b'), { maxKeys: 3 }),
    ),
  })
  .map(({ name, type, data, lie, linkname, format, mode, pax }) => {
    const headerOnly = ['5', '2', '1', '6', '3'].includes(type);
    const entry: RawEntry = { name: type === '5' || type === '\0' && name.endsWith('/') ? `${name}/` : name, type, data: headerOnly ? '' : data };
    if (lie !== undefined) entry.size = lie;
    if (type === '1' || type === '2') entry.linkname = linkname;
    if (type === '3') Object.assign(entry, { devmajor: 1, devminor: 5 });
    if (format === 'gnu') entry.gnu = true;
    if (format === 'v7') entry.v7 = true;
    if (mode !== undefined) entry.patch = (h: Buffer) => h.write(mode, 100, 'latin1');
    const records: Record<string, string> = { ...(pax ?? {}) };
    if (format === 'pax') records.path = name;
    if (Object.keys(records).length > 0) entry.pax = records;
    if (format === 'gnu-long' || (entry.name.length > 100 && format !== 'pax')) {
      // A GNU long name record, as GNU tar writes it for names past 100 bytes.
      return [{ name: '././@LongLink', type: 'L', data: `${entry.name}\0`, gnu: true }, { ...entry, name: entry.name.slice(0, 99), gnu: true }];
    }
    return [entry];
  });

const streamArb = fc.record({
  entries: fc.array(entryArb, { minLength: 0, maxLength: 5 }),
  end: fc.constantFrom(true, true, true, true, false),
  cut: sometimes(fc.nat(6000)),
  flip: sometimes(fc.record({ at: fc.nat(6000), bit: fc.integer({ min: 0, max: 7 }) })),
  compression: fc.constantFrom('none', 'none', 'gzip', 'zstd'),
  cutCompressed: fc.boolean(),
});

/** zstd from the library strata itself depends on (compression is not what is under test here). */
const zstd = createRequire(new URL('../packages/core/package.json', import.meta.url))('zstd-napi') as { compress(bytes: Uint8Array): Buffer };

/** Whether the entries of a layer make a tree apply can build: a model of the target, by clean path. */
function makesATree(entries: readonly Entry[]): boolean {
  const types = new Map<string, string>([[ROOT, 'directory']]);
  const links: Entry[] = [];
  for (const e of entries) {
    if (e.path.split('/').some((part) => part.startsWith('.wh.'))) return false;
    if (e.path === ROOT) {
      if (e.type !== 'directory') return false;
      continue;
    }
    for (let p = parentOf(e.path); p !== ROOT; p = parentOf(p)) {
      const t = types.get(p);
      if (t !== undefined && t !== 'directory') return false; // below a file, or through a symlink
    }
    for (const key of [...types.keys()]) if (key.startsWith(`${e.path}/`) && e.type !== 'directory') types.delete(key);
    // A hardlink to what the layer already made is linked there and then: to a directory it cannot be.
    if (e.type === 'hardlink' && types.get(e.linkname!) === 'directory') return false;
    types.set(e.path, e.type);
    if (e.type === 'hardlink') links.push(e);
  }
  for (const link of links) {
    let target = link.linkname!;
    for (let hops = 0; types.get(target) === 'hardlink' && hops < 10; hops++) target = entries.find((e) => e.path === target && e.type === 'hardlink')?.linkname ?? target;
    const t = types.get(target);
    if (t === undefined || t === 'directory' || t === 'hardlink' || target === link.path) return false;
  }
  return true;
}

function comparable(entries: ReadonlyArray<Pick<Entry, 'path' | 'size' | 'linkname' | 'mode' | 'uid' | 'gid'> & { type: string; mtime: number }>) {
  const isLink = (type: string) => type === 'symlink' || type === 'hardlink';
  return entries.map((e) => ({ path: e.path, type: e.type, size: e.type === 'file' ? e.size : 0, linkname: isLink(e.type) ? (e.linkname ?? '') : '', mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime }));
}

/** Go's entries as `comparable` takes strata's. */
function goComparable(entries: readonly GoEntry[]) {
  return comparable(
    entries.map((e) => {
      const type = goEntryType(e.typeflag) ?? `go:${e.typeflag}`;
      const path = goLayerPath(e.name) ?? `unsafe:${e.name}`;
      const linkname = type === 'hardlink' ? (goLayerPath(e.linkname) ?? `unsafe:${e.linkname}`) : e.linkname;
      return { path, type, size: e.size, linkname, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: e.sec };
    }),
  );
}

const typed = (o: Outcome<unknown>) => o.ok || isStrataError(o.error);

describe.skipIf(!needs('root', 'python3', 'go'))('fuzzed layers', () => {
  it('ls, apply and digest agree; refusals are typed; apply stays inside; accepted streams read as Go and Python read them', async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(streamArb, async (spec) => {
        const flat = spec.entries.flat();
        let tar = rawTar(flat, { end: spec.end });
        if (spec.cut !== undefined && spec.cut < tar.length) tar = tar.subarray(0, spec.cut);
        if (spec.flip !== undefined && spec.flip.at < tar.length) tar[spec.flip.at]! ^= 1 << spec.flip.bit;
        let bytes: Buffer = tar;
        if (spec.compression === 'gzip') bytes = gzipSync(tar);
        if (spec.compression === 'zstd') bytes = zstd.compress(tar);
        if (spec.compression !== 'none' && spec.cutCompressed) bytes = bytes.subarray(0, Math.max(1, bytes.length >> 1));

        const r = await threeWays(bytes);
        try {
          for (const [what, o] of [['entries', r.entries], ['ls', r.ls], ['apply', r.apply], ['digest', r.digest]] as const) {
            expect(typed(o), `${what}: ${codeOf(o)}`).toBe(true);
          }
          expect(r.outside).toEqual([]);
          expect(codeOf(r.ls)).toBe(codeOf(r.entries));
          expect(codeOf(r.digest)).toBe(codeOf(r.entries));
          if (!r.entries.ok) {
            refused++;
            expect(r.apply.ok).toBe(false);
            return;
          }
          accepted++;
          const entries = r.entries.value;
          if (makesATree(entries)) {
            expect(codeOf(r.apply)).toBeUndefined();
            expect((r.apply as { value: string }).value).toBe((r.digest as { value: string }).value);
          }
          const plain = join(work, 'stream.tar');
          writeFileSync(plain, tar);
          const python = pythonList(plain);
          const ours = comparable(entries.map((e) => ({ ...e, mtime: e.mtime.sec })));
          // Go's archive/tar, the reader under containerd and moby, reads it the same (its global headers aside).
          const go = goList(plain);
          const goEntries = go.entries.filter((e) => e.typeflag !== 'g');
          expect({ error: go.error, entries: goComparable(goEntries) }).toEqual({ error: '', entries: ours });
          // So does Python's tarfile, but for a PAX record with an empty value, which Go (and strata) read as
          // leaving the header's field in force and Python as zero or empty; for a stream of no bytes, an
          // empty layer to Go (and Docker and strata) and "empty file" to Python; and for a stream cut inside
          // its last entry's padding, which Go (and strata) read to there and Python calls cut short.
          const emptyRecord = flat.some((e) => Object.values(e.pax ?? {}).includes(''));
          const pythonAgrees = !emptyRecord && tar.length > 0 && tar.length % 512 === 0;
          if (pythonAgrees) expect('entries' in python ? comparable(python.entries) : python).toEqual(ours);
        } finally {
          r.dispose();
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.STRATA_SEED ?? 20261202), endOnFailure: true },
    );
    // The generator must exercise both sides, or the property says little.
    expect(accepted, `accepted ${accepted}, refused ${refused}`).toBeGreaterThan(20);
    expect(refused, `accepted ${accepted}, refused ${refused}`).toBeGreaterThan(20);
  }, 60_000 + RUNS * 250);
});
