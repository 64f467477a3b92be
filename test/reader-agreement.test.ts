/**
 * The reader and apply agree with the runtimes, byte for byte. Each case is a layer on which tar readers
 * have been seen to disagree; strata reads it as Go's archive/tar does (what containerd and moby extract),
 * checked against Go itself, and `ls`, `apply` and `digest` agree with each other: all accept, listing the
 * same entries as Go and (where it agrees with Go) Python's tarfile, or all refuse with one typed code.
 * Archives are built by hand (an independent writer plus byte patching), since no well-behaved writer makes
 * them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLayer, decodeName, encodeName, flatten, mergedListing, readLayer, TarLayer, type Entry } from '@strata/core';
import { needs } from './helpers/oracle.js';
import { ContentPrint, goBinary, goEntryType, goLayerPath, goList, strataBinary } from './helpers/go-tar.js';
import { pythonList } from './helpers/python-tar.js';
import { oldGnuSparse, rawTar, sparse01, type RawEntry } from './helpers/raw-tar.js';
import { codeOf, threeWays, type ThreeWays } from './helpers/three-ways.js';

const file = (name: string, data = 'x\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });

/** The fields Python's tarfile and strata both report, in archive order. */
function comparable(entries: readonly Entry[]) {
  return entries.map((e) => ({ path: e.path, type: e.type, size: e.type === 'file' ? e.size : 0, linkname: e.linkname ?? '' }));
}

const work = mkdtempSync(join(tmpdir(), 'strata-agree-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What Go's archive/tar (containerd's and moby's reader) makes of `bytes`, in the fields `comparable` keeps. */
function goReading(bytes: Buffer): { error: string; entries: ReturnType<typeof comparable> } {
  const tar = join(work, `go-${Math.random().toString(36).slice(2)}.tar`);
  writeFileSync(tar, bytes);
  const { error, entries } = goList(tar);
  const go = entries.filter((e) => e.typeflag !== 'g');
  return {
    error,
    entries: go.map((e) => {
      const type = goEntryType(e.typeflag) ?? `go:${e.typeflag}`;
      const linkname = type === 'hardlink' ? (goLayerPath(e.linkname) ?? e.linkname) : type === 'symlink' ? e.linkname : '';
      return { path: goLayerPath(e.name) ?? e.name, type: type as Entry['type'], size: type === 'file' ? e.size : 0, linkname };
    }),
  };
}

/** All three accept; their entries are `paths` (archive order) and Go's archive/tar and Python's tarfile list the same. */
async function expectAccepted(bytes: Buffer, paths: string[]): Promise<ThreeWays> {
  const r = await threeWays(bytes);
  expect(codeOf(r.entries), 'readLayer').toBeUndefined();
  expect(codeOf(r.ls), 'ls').toBeUndefined();
  expect(codeOf(r.apply), 'apply').toBeUndefined();
  expect(codeOf(r.digest), 'digest').toBeUndefined();
  expect(r.outside).toEqual([]);
  const entries = (r.entries as { value: Entry[] }).value;
  expect(entries.map((e) => e.path)).toEqual(paths);
  const tar = join(work, `case-${Math.random().toString(36).slice(2)}.tar`);
  writeFileSync(tar, bytes);
  const python = pythonList(tar);
  expect('entries' in python ? comparable(python.entries as never) : python).toEqual(comparable(entries));
  expect(goReading(bytes)).toEqual({ error: '', entries: comparable(entries) });
  return r;
}

/** All three refuse, with `code`, and the apply leaves nothing behind; `goRefuses`: so does Go's reader. */
async function expectRefused(bytes: Buffer, code: string, message?: RegExp, goRefuses = false): Promise<void> {
  if (goRefuses) expect(goReading(bytes).error).not.toBe('');
  const r = await threeWays(bytes);
  try {
    expect([codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([code, code, code]);
    if (message) expect(String((r.digest as { error: Error }).error.message)).toMatch(message);
    expect(r.outside).toEqual([]);
  } finally {
    r.dispose();
  }
}

describe.skipIf(!needs('root', 'python3', 'go', 'gnu-tar'))('reader and apply agree with the runtimes', () => {
  it('an archive that ends at an entry boundary, without its end-of-archive blocks, is read to there, as Go, Python and GNU tar read it', async () => {
    // Layers in the wild end so (claircore#683); containerd and Docker unpack them.
    const bytes = rawTar([file('a'), file('b', 'y'.repeat(700)), { name: 'd/', type: '5' }, { name: 'd/l', type: '2', linkname: '../a' }], { end: false });
    (await expectAccepted(bytes, ['a', 'b', 'd', 'd/l'])).dispose();
    const tar = join(work, 'no-end.tar');
    writeFileSync(tar, bytes);
    expect(execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n').filter(Boolean)).toEqual(['a', 'b', 'd/', 'd/l']);
    // An extended header with no entry after it is refused (Go drops it, Python refuses).
    await expectRefused(rawTar([file('a'), { name: 'PaxHeaders/b', type: 'x', data: '10 path=b\n' }], { end: false }), 'LAYER_FORMAT', /ends after an extended header/);
  });

  it("an archive that ends inside its last entry's padding is read to there, as Go reads it (Debian's umoci insert writes such layers)", async () => {
    const whole = rawTar([file('a'), file('b', 'y'.repeat(700))], { end: false });
    for (const cut of [512 + 512 + 512 + 700, 512 + 512 + 512 + 900]) {
      const bytes = whole.subarray(0, cut);
      const r = await threeWays(bytes);
      try {
        expect([codeOf(r.entries), codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined, undefined]);
        const entries = (r.entries as { value: Entry[] }).value;
        expect(goReading(bytes)).toEqual({ error: '', entries: comparable(entries) });
        expect(entries.map((e) => e.path)).toEqual(['a', 'b']);
        expect(readdirSync(r.target).sort()).toEqual(['a', 'b']);
      } finally {
        r.dispose();
      }
    }
    // Cut inside the data or inside a header, it is a stream cut short, to Go too.
    await expectRefused(whole.subarray(0, 512 + 512 + 512 + 300), 'LAYER_FORMAT', /truncated stream/, true);
    await expectRefused(whole.subarray(0, 512 + 512 + 300), 'LAYER_FORMAT', /truncated stream/, true);
  });

  it('an input of no bytes at all is an empty layer, as Go reads it and Docker applies it (moby#18226)', async () => {
    expect(goReading(Buffer.alloc(0))).toEqual({ error: '', entries: [] });
    const r = await threeWays(Buffer.alloc(0));
    try {
      expect([codeOf(r.entries), codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined, undefined]);
      expect((r.entries as { value: Entry[] }).value).toEqual([]);
      expect((r.digest as { value: string }).value).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
      expect(r.outside).toEqual([]);
    } finally {
      r.dispose();
    }
    // One byte more is a stream cut short, not an empty layer.
    await expectRefused(Buffer.from('x'), 'LAYER_FORMAT', /truncated stream/);
  });

  for (const [type, extra] of [
    ['5', {}],
    ['2', { linkname: 'f' }],
    ['1', { linkname: 'f' }],
    ['3', { devmajor: 1, devminor: 3 }],
    ['4', { devmajor: 7, devminor: 0 }],
    ['6', {}],
  ] as const) {
    it(`a type ${type} header with a size but no data: the size carries no data and the next entries are read`, async () => {
      const bytes = rawTar([file('f'), { name: type === '5' ? 'odd/' : 'odd', type, size: 1536, ...extra }, file('after-1'), file('after-2')]);
      const r = await expectAccepted(bytes, ['f', 'odd', 'after-1', 'after-2']);
      expect(readdirSync(r.target).sort()).toEqual(['after-1', 'after-2', 'f', 'odd']);
      r.dispose();
    });
  }

  it('a GNU dumpdir (D) directory carries data, which is skipped (Python lists it as an unknown type)', async () => {
    const r = await threeWays(rawTar([{ name: 'dump/', type: 'D', data: 'Ya\0Yb\0\0' }, file('after')]));
    try {
      expect([codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined]);
      expect((r.entries as { value: Entry[] }).value.map((e) => [e.path, e.type])).toEqual([['dump', 'directory'], ['after', 'file']]);
    } finally {
      r.dispose();
    }
  });

  it('a NUL in a PAX path is refused', async () => {
    await expectRefused(rawTar([file('harmless', 'x', { pax: { path: 'a\0b' } })]), 'LAYER_FORMAT');
  });

  it('a NUL in a PAX link path is refused', async () => {
    await expectRefused(rawTar([file('f'), { name: 'l', type: '2', pax: { linkpath: 'f\0../../x' } }]), 'LAYER_FORMAT');
  });

  it('a NUL in a PAX xattr key is refused', async () => {
    await expectRefused(rawTar([file('f', 'x', { pax: { 'SCHILY.xattr.user.a\0b': 'v' } })]), 'LAYER_FORMAT');
  });

  it('PAX global headers are ignored (as containerd and moby do): no entry is renamed or dropped, no time changed', async () => {
    const bytes = rawTar([
      file('first', 'x', { globals: { path: 'renamed', mtime: '1' } }),
      file('second', 'y', { globals: { path: '' } }),
      file('third', 'z', { mtime: 1_700_000_123 }),
    ]);
    const r = await threeWays(bytes);
    try {
      expect([codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined]);
      const entries = (r.entries as { value: Entry[] }).value;
      expect(entries.map((e) => [e.path, e.mtime.sec])).toEqual([
        ['first', 1_700_000_000],
        ['second', 1_700_000_000],
        ['third', 1_700_000_123],
      ]);
      expect(readdirSync(r.target).sort()).toEqual(['first', 'second', 'third']);
      const tar = join(work, 'globals.tar');
      writeFileSync(tar, bytes);
      const indexed = await TarLayer.open(tar);
      expect([...indexed.children('.').keys()].sort()).toEqual(['first', 'second', 'third']);
    } finally {
      r.dispose();
    }
  });

  it('a ustar prefix in a GNU header (Go before 1.8 wrote it) is read as Go reads it', async () => {
    const r = await expectAccepted(rawTar([{ name: 'pre/', type: '5' }, file('name', 'x', { gnu: true, prefix: 'pre' })]), ['pre', 'pre/name']);
    r.dispose();
  });

  it('GNU times where a ustar prefix would be are times, not a prefix', async () => {
    const times = (h: Buffer) => {
      h.write('14567645676\0', 345, 'latin1'); // atime
      h.write('14567645677\0', 357, 'latin1'); // ctime
    };
    const r = await threeWays(rawTar([file('name', 'x', { gnu: true, patch: times })]));
    try {
      expect((r.entries as { value: Entry[] }).value.map((e) => e.path)).toEqual(['name']);
      expect(codeOf(r.apply)).toBeUndefined();
    } finally {
      r.dispose();
    }
  });

  it('only the old NUL type flag with a trailing slash is a directory', async () => {
    const r = await expectAccepted(rawTar([{ name: 'old-dir/', type: '\0' }, file('old-dir/f'), { name: 'reg', type: '0', data: 'x' }]), ['old-dir', 'old-dir/f', 'reg']);
    r.dispose();
  });

  it('a corrupt first header says what is wrong: a checksum mismatch', async () => {
    const bytes = rawTar([file('a')]);
    bytes[10]! ^= 0x40;
    await expectRefused(bytes, 'LAYER_FORMAT', /not a tar archive: tar header checksum mismatch \(stored \d+, computed \d+\)/);
  });

  it('a corrupt first header says what is wrong: a size that is not a number', async () => {
    await expectRefused(rawTar([file('a', 'x', { patch: (h) => h.write('12 34\0', 124, 'latin1') })]), 'LAYER_FORMAT', /not a tar archive: tar header size is not a number/);
  });

  it('a negative base-256 size is refused', async () => {
    await expectRefused(rawTar([file('a', '', { patch: (h) => h.fill(0xff, 124, 136) })]), 'LAYER_FORMAT', /negative size/);
  });

  it('a PAX record with an empty value leaves the header field in force, as Go reads it (Python reads zero or empty)', async () => {
    const bytes = rawTar([
      file('named', 'x', { pax: { path: '', uid: '', mtime: '' }, uid: 7, mtime: 1_700_000_321 }),
      file('target'),
      { name: 'link', type: '2', linkname: 'target', pax: { linkpath: '', uname: '' } },
    ]);
    const r = await threeWays(bytes);
    try {
      expect([codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined]);
      const entries = (r.entries as { value: Entry[] }).value;
      expect(entries.map((e) => [e.path, e.uid, e.mtime.sec, e.linkname])).toEqual([
        ['named', 7, 1_700_000_321, undefined],
        ['target', 0, 1_700_000_000, undefined],
        ['link', 0, 1_700_000_000, 'target'],
      ]);
      expect(goReading(bytes)).toEqual({ error: '', entries: comparable(entries) });
      expect(readlinkSync(join(r.target, 'link'))).toBe('target');
    } finally {
      r.dispose();
    }
  });

  it('PAX times with a plus sign or a point without digits are read as Go reads them', async () => {
    const r = await expectAccepted(rawTar([file('plus', 'x', { pax: { mtime: '+1700000100' } }), file('point', 'y', { pax: { mtime: '1700000200.' } })]), ['plus', 'point']);
    expect((r.entries as { value: Entry[] }).value.map((e) => e.mtime)).toEqual([
      { sec: 1_700_000_100, nsec: 0 },
      { sec: 1_700_000_200, nsec: 0 },
    ]);
    r.dispose();
  });

  for (const [what, entry] of [
    ['a malformed PAX atime', file('f', 'x', { pax: { atime: 'yesterday' } })],
    ['a malformed PAX ctime', file('f', 'x', { pax: { ctime: '1.2.3' } })],
    ['a malformed PAX size on a directory', { name: 'd/', type: '5', pax: { size: '12a' } } as RawEntry],
    ['a PAX size beyond any integer on a symlink', { name: 's', type: '2', linkname: 't', pax: { size: '99999999999999999999' } } as RawEntry],
    ['a negative PAX size on a file', file('f', '', { pax: { size: '-1' } })],
  ] as const) {
    it(`${what} is refused, as Go refuses it (though the field is not kept, or the entry has no data)`, async () => {
      await expectRefused(rawTar([entry, file('after')]), 'LAYER_FORMAT', undefined, true);
    });
  }

  describe('GNU sparse files, in each of the forms GNU tar writes, read and applied as Go and Python read them', () => {
    // Data at the start, in the middle, across the first MiB and a hole at the end; a zero-length fragment
    // at the end, as GNU tar marks a file that ends in a hole.
    const size = 3 * 1024 * 1024 + 1000;
    const fragments: Array<[number, string]> = [[0, 'head\n'], [70_000, 'middle'.repeat(50)], [1024 * 1024 - 3, 'across a MiB boundary'], [2 * 1024 * 1024, 'tail'], [size, '']];
    const content = Buffer.alloc(size);
    for (const [offset, data] of fragments) content.write(data, offset, 'latin1');
    const stored = fragments.map(([, data]) => data).join('');
    const map = fragments.flatMap(([offset, data]) => [String(offset), String(data.length)]);
    const many = Array.from({ length: 30 }, (_, i): [number, string] => [i * 65536, `fragment ${i}`]);
    const manyContent = Buffer.alloc(30 * 65536);
    for (const [offset, data] of many) manyContent.write(data, offset, 'latin1');

    const forms: Array<[string, () => Buffer, Buffer]> = [
      ['old GNU (type S)', () => rawTar([oldGnuSparse('f', size, fragments)]), content],
      ['old GNU with extension blocks (30 fragments)', () => rawTar([oldGnuSparse('f', manyContent.length, many)]), manyContent],
      ['PAX 0.0', () => rawTar([file('f', stored, { pax: [['GNU.sparse.size', String(size)], ['GNU.sparse.numblocks', String(fragments.length)], ...fragments.flatMap(([offset, data]): Array<[string, string]> => [['GNU.sparse.offset', String(offset)], ['GNU.sparse.numbytes', String(data.length)]])] })]), content],
      ['PAX 0.1', () => rawTar([{ ...sparse01('GNUSparseFile.0/f', size, map.join(','), stored), pax: { ...sparse01('', size, map.join(','), '').pax, 'GNU.sparse.name': 'f' } }]), content],
      [
        'PAX 1.0',
        () => {
          const header = Buffer.from(`${fragments.length}\n${map.join('\n')}\n`);
          const data = Buffer.concat([header, Buffer.alloc(512 - (header.length % 512)), Buffer.from(stored, 'latin1')]);
          return rawTar([file('GNUSparseFile.0/f', data as unknown as string, { pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'f', 'GNU.sparse.realsize': String(size) } })]);
        },
        content,
      ],
    ];

    for (const [form, build, expected] of forms) {
      it(form, async () => {
        const bytes = build();
        const r = await threeWays(bytes);
        try {
          expect([codeOf(r.entries), codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined, undefined]);
          expect((r.entries as { value: Entry[] }).value.map((e) => [e.path, e.type, e.size])).toEqual([['f', 'file', expected.length]]);
          const chunks: Uint8Array[] = [];
          for await (const { body } of readLayer(bytes)) for await (const chunk of body) chunks.push(Buffer.from(chunk));
          expect(Buffer.concat(chunks).equals(expected), 'content read').toBe(true);
          const applied = join(r.target, 'f');
          expect(readFileSync(applied).equals(expected), 'content applied').toBe(true);
          // Holes stay holes: a block or two for each fragment (30 at most here), of files of 2 and 3 MiB.
          expect(statSync(applied).blocks * 512, 'holes applied as holes').toBeLessThanOrEqual(8192 * 30);

          const tar = join(work, `sparse-${Math.random().toString(36).slice(2)}.tar`);
          writeFileSync(tar, bytes);
          const go = goList(tar);
          const print = new ContentPrint();
          print.update(expected);
          expect(go.error).toBe('');
          expect(go.entries.map((e) => [goLayerPath(e.name), goEntryType(e.typeflag), e.size, e.read, e.print])).toEqual([['f', 'file', expected.length, expected.length, print.digest()]]);
          const python = pythonList(tar);
          const sha256 = createHash('sha256').update(expected).digest('hex');
          expect('entries' in python ? python.entries.map((e) => [e.path, e.type, e.size, e.sha256]) : python).toEqual([['f', 'file', expected.length, sha256]]);
        } finally {
          r.dispose();
        }
      });
    }

    it('a sparse version GNU never wrote is a plain file, its stored bytes its content, as Go reads it (Python takes its real size)', async () => {
      const bytes = rawTar([file('f', 'stored bytes', { pax: { 'GNU.sparse.major': '2', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '100' } })]);
      const r = await threeWays(bytes);
      try {
        expect([codeOf(r.entries), codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined, undefined]);
        const entries = (r.entries as { value: Entry[] }).value;
        expect(goReading(bytes)).toEqual({ error: '', entries: comparable(entries) });
        expect(readFileSync(join(r.target, 'f'), 'utf8')).toBe('stored bytes');
      } finally {
        r.dispose();
      }
    });

    it('a map that disagrees with the data stored is refused, where Go fails the read', async () => {
      await expectRefused(rawTar([sparse01('f', 100, '10,50', 'short')]), 'LAYER_FORMAT', /stores 5 bytes where its map names 50/, true);
      await expectRefused(rawTar([{ name: 'f', type: 'S', data: 'x', gnu: true }]), 'LAYER_FORMAT', /stores 1 bytes where its map names 0/, true);
      await expectRefused(rawTar([oldGnuSparse('f', 100, [[10, 'abcd'], [12, 'efgh']])]), 'LAYER_FORMAT', /overlapping/, true);
    });
  });

  describe('names that are not UTF-8 are kept byte for byte, as Go reads them and containerd and GNU tar write them', () => {
    const latin1 = (text: string) => Buffer.from(text, 'latin1');
    /** A ustar name field of raw bytes (rawTar writes names as UTF-8). */
    const named = (bytes: Buffer) => (h: Buffer) => {
      h.fill(0, 0, 100);
      bytes.copy(h, 0);
    };
    const first = () =>
      rawTar([
        { name: 'd', type: '5', mode: 0o755, patch: named(latin1('d\xe9/')) },
        file('f', 'latin-1\n', { patch: named(latin1('d\xe9/caf\xe9')) }),
        { name: 'link', type: '2', pax: { linkpath: latin1('d\xe9/caf\xe9') } },
        { name: 'hard', type: '1', pax: { linkpath: latin1('d\xe9/caf\xe9') } },
        file('bad', 'pax\n', { pax: { path: Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe]), uname: latin1('us\xe9r') } }),
        file('cut', 'cut short\n', { pax: { path: Buffer.from([0x78, 0xe2, 0x82]) } }),
        file('x', 'sorted\n', { patch: named(latin1('d\xe9/\x80')) }),
        file('y', 'sorted\n', { patch: named(Buffer.concat([latin1('d\xe9/'), Buffer.from('\u00e9', 'utf8')])) }),
      ]);

    /** Every name under `root` as bytes, with what it is: the tree GNU tar or strata made, byte for byte. */
    const binaryTree = (root: string): Record<string, string> => {
      const out: Record<string, string> = {};
      const walk = (dir: Buffer, rel: string) => {
        for (const name of readdirSync(dir, { encoding: 'buffer' })) {
          const path = Buffer.concat([dir, Buffer.from('/'), name]);
          const key = `${rel}/${name.toString('hex')}`;
          const st = lstatSync(path);
          if (st.isDirectory()) {
            out[key] = 'dir';
            walk(path, key);
          } else if (st.isSymbolicLink()) out[key] = `link ${readlinkSync(path, { encoding: 'buffer' }).toString('hex')}`;
          else out[key] = `file ${readFileSync(path).toString('hex')} nlink ${st.nlink}`;
        }
      };
      walk(Buffer.from(root), '');
      return out;
    };

    it('read as Go reads them, applied as GNU tar extracts them, and written back by flatten as they were', async () => {
      const bytes = first();
      const r = await threeWays(bytes);
      try {
        expect([codeOf(r.entries), codeOf(r.ls), codeOf(r.apply), codeOf(r.digest)]).toEqual([undefined, undefined, undefined, undefined]);
        const entries = (r.entries as { value: Entry[] }).value;
        const tar = join(work, 'not-utf8.tar');
        writeFileSync(tar, bytes);
        const go = goList(tar);
        expect(go.error).toBe('');
        const goNames = go.entries.map((e) => [goLayerPath(goBinary(e.bytes.name)), goBinary(e.bytes.linkname), goBinary(e.bytes.uname)]);
        expect(entries.map((e) => [strataBinary(e.path), e.type === 'hardlink' ? strataBinary(e.linkname!) : e.linkname === undefined ? '' : strataBinary(e.linkname), strataBinary(e.uname ?? '')])).toEqual(goNames);
        expect(go.entries.some((e) => !e.utf8)).toBe(true);

        const gnu = join(work, 'not-utf8-gnu');
        execFileSync('mkdir', ['-p', gnu]);
        execFileSync('tar', ['-xf', tar, '-C', gnu]);
        expect(binaryTree(r.target)).toEqual(binaryTree(gnu));
        expect(Object.keys(binaryTree(r.target))).toHaveLength(8);
        // An embedder reaches them through Node with the path's bytes.
        const latin = entries.find((e) => strataBinary(e.path) === latin1('d\xe9/caf\xe9').toString('latin1'))!;
        expect(readFileSync(Buffer.from(encodeName(`${r.target}/${latin.path}`)), 'utf8')).toBe('latin-1\n');
        expect(decodeName(encodeName(latin.path))).toBe(latin.path);

        // The writer gives the bytes back: flatten of the layer names the same bytes.
        const flat = join(work, 'not-utf8-flat.tar');
        await flatten([tar], flat);
        const names = (listing: ReturnType<typeof goList>) => listing.entries.map((e) => [goBinary(e.bytes.name).replace(/\/$/, ''), goBinary(e.bytes.linkname), goBinary(e.bytes.uname)]);
        expect(names(goList(flat))).toEqual(names(go));
        // Siblings listed in byte order: 'c' (0x63), then the byte 0x80, then U+00E9 (0xc3 0xa9).
        const listed = (await mergedListing([tar])).map((e) => strataBinary(e.path)).filter((p) => p.startsWith(latin1('d\xe9/').toString('latin1')));
        expect(listed).toEqual(['d\xe9/caf\xe9', 'd\xe9/\x80', 'd\xe9/\xc3\xa9'].map((n) => latin1(n).toString('latin1')));

        // A later layer's whiteout and opaque marker name them too.
        const second = join(work, 'not-utf8-2.tar');
        writeFileSync(second, rawTar([file('w', '', { patch: named(latin1('.wh.bad\xff\xfe')) }), file('o', '', { patch: named(latin1('d\xe9/.wh..wh..opq')) })]));
        await applyLayer(second, r.target);
        const left = Object.keys(binaryTree(r.target)).map((k) => k.split('/').map((h) => Buffer.from(h, 'hex').toString('latin1')).join('/'));
        expect(left.sort()).toEqual(['/cut'.replace('cut', latin1('x\xe2\x82').toString('latin1')), '/d\xe9', '/hard', '/link'].map((n) => latin1(n).toString('latin1')).sort());
      } finally {
        r.dispose();
      }
    });
  });

  it('a numeric field read differently by Go (10) and Python (0) is refused', async () => {
    await expectRefused(rawTar([file('a', '', { patch: (h) => h.write('\x00\x00\x00\x0012\x00', 108, 'latin1') })]), 'LAYER_FORMAT');
  });
});
