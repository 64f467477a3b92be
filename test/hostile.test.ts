/**
 * The hostile-archive corpus: each test is named after the attack it pins. Every archive fails with its
 * typed code, nothing outside the target changes, and a fresh target is not left behind looking complete.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyLayer, digestLayer, isApplyIncomplete, mergedListing, TarLayer, type ApplyOptions } from '@strata/core';
import { needs } from './helpers/oracle.js';
import { oldGnuSparse, rawTar, sparse01, type RawEntry } from './helpers/raw-tar.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

interface Case {
  attack: string;
  code: string;
  archive: () => Buffer;
  /** Prepares the existing target (the lower layers) before the apply. */
  target?: (dir: string) => void;
  options?: ApplyOptions;
}

/** This process's descriptors open on `path`. */
function openOn(path: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // the listing's own descriptor, closed since
    }
  });
}

const file = (name: string, data = 'pwned\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });

const cases: Case[] = [
  { attack: 'dot-dot entry name', code: 'UNSAFE_PATH', archive: () => rawTar([file('../../escaped')]) },
  { attack: 'dot-dot hidden mid-path', code: 'UNSAFE_PATH', archive: () => rawTar([file('a/../../../escaped')]) },
  { attack: 'PAX path with dot-dot behind a harmless ustar name', code: 'UNSAFE_PATH', archive: () => rawTar([file('harmless', 'x', { pax: { path: '../../escaped' } })]) },
  {
    attack: 'GNU long name with dot-dot',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([{ name: '././@LongLink', type: 'L', data: '../../escaped\0', gnu: true }, file('harmless', 'x', { gnu: true })]),
  },
  {
    attack: 'symlink in the layer used as parent to escape',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([{ name: 'up', type: '2', linkname: '../../..' }, file('up/escaped')]),
  },
  {
    attack: 'symlink chain in the layer escaping through a second link',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([{ name: 'b', type: '2', linkname: '../..' }, { name: 'a', type: '2', linkname: 'b' }, file('a/escaped')]),
  },
  {
    attack: 'symlink loop used as a parent',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([{ name: 'a', type: '2', linkname: 'b' }, { name: 'b', type: '2', linkname: 'a' }, file('a/x')]),
  },
  {
    attack: 'symlink already in the target pointing outside',
    code: 'UNSAFE_PATH',
    target: (dir) => symlinkSync('../../outside', join(dir, 'planted')),
    archive: () => rawTar([file('planted/escaped')]),
  },
  { attack: 'hardlink with dot-dot target', code: 'UNSAFE_PATH', archive: () => rawTar([{ name: 'h', type: '1', linkname: '../../outside/secret' }]) },
  // An absolute target is read from the layer root (where this layer has no etc/passwd), never the host's.
  { attack: 'hardlink with absolute target', code: 'LAYER_FORMAT', archive: () => rawTar([{ name: 'h', type: '1', linkname: '/etc/passwd' }]) },
  { attack: 'absolute name with dot-dot', code: 'UNSAFE_PATH', archive: () => rawTar([file('/../../tmp/strata-absolute-escape')]) },
  {
    attack: 'hardlink through an escaping symlink',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([{ name: 'up', type: '2', linkname: '../..' }, { name: 'h', type: '1', linkname: 'up/outside/secret' }]),
  },
  { attack: 'hardlink to a missing file', code: 'LAYER_FORMAT', archive: () => rawTar([{ name: 'h', type: '1', linkname: 'nowhere' }]) },
  {
    attack: 'device node when devices are not permitted',
    code: 'UNSUPPORTED',
    options: { devices: 'refuse' },
    archive: () => rawTar([{ name: 'mem', type: '3', mode: 0o600, devmajor: 1, devminor: 1 }]),
  },
  { attack: 'stream truncated inside file data', code: 'LAYER_FORMAT', archive: () => rawTar([file('a', 'x'.repeat(5000)), file('b')]).subarray(0, 512 + 2048) },
  { attack: 'stream truncated inside a header', code: 'LAYER_FORMAT', archive: () => rawTar([file('a'), file('b')]).subarray(0, 1024 + 300) },
  {
    attack: 'header checksum error',
    code: 'LAYER_FORMAT',
    archive: () => {
      const tar = rawTar([file('a'), file('b')]);
      tar[1024 + 10]! ^= 0x01; // second header's name
      return tar;
    },
  },
  { attack: 'declared size larger than the data', code: 'LAYER_FORMAT', archive: () => rawTar([file('a', 'short', { size: 1_000_000 })]) },
  {
    attack: 'declared size smaller than the data',
    code: 'LAYER_FORMAT',
    archive: () => {
      // The header claims 10 bytes; the next "header" is then 512 bytes of the file's own data.
      const tar = rawTar([file('a', 'y'.repeat(2000), { size: 10 })]);
      return tar;
    },
  },
  { attack: 'path beyond the length limit', code: 'LIMIT_EXCEEDED', archive: () => rawTar([file('x', 'x', { pax: { path: `${'p/'.repeat(3000)}f` } })]) },
  {
    attack: 'xattr value beyond the size limit',
    code: 'LIMIT_EXCEEDED',
    archive: () => rawTar([file('x', 'x', { pax: { 'SCHILY.xattr.user.big': Buffer.alloc(100 * 1024, 0x61) } })]),
  },
  {
    attack: 'tar bomb by entry count',
    code: 'LIMIT_EXCEEDED',
    options: { maxEntries: 100 },
    archive: () => rawTar(Array.from({ length: 1000 }, (_, i) => file(`f${i}`, ''))),
  },
  {
    attack: 'tar bomb by bytes (gzip of zeros)',
    code: 'LIMIT_EXCEEDED',
    options: { maxTotalBytes: 1024 * 1024 },
    archive: () => gzipSync(rawTar([file('zeros', Buffer.alloc(64 * 1024 * 1024) as unknown as string)])),
  },
  {
    attack: 'corrupt gzip stream',
    code: 'LAYER_FORMAT',
    archive: () => {
      const gz = gzipSync(rawTar([file('a', 'z'.repeat(100_000))]));
      for (let i = 40; i < 80; i++) gz[i]! ^= 0x5a;
      return gz;
    },
  },
  { attack: 'truncated gzip stream', code: 'LAYER_FORMAT', archive: () => gzipSync(rawTar([file('a', 'q'.repeat(100_000))])).subarray(0, 60) },
  // Sparse files: a map that lies about the data stored, or about the file, fails before anything is written.
  { attack: 'old GNU sparse file storing data its map does not name', code: 'LAYER_FORMAT', archive: () => rawTar([{ name: 'sparse', type: 'S', data: 'x', gnu: true }]) },
  { attack: "old GNU sparse header without GNU's magic (star's layout)", code: 'LAYER_FORMAT', archive: () => rawTar([oldGnuSparse('sparse', 10, [[0, 'x']], { gnu: false })]) },
  { attack: 'sparse map reaching past the file', code: 'LAYER_FORMAT', archive: () => rawTar([oldGnuSparse('sparse', 4, [[2, 'xyz']])]) },
  { attack: 'sparse fragments overlapping', code: 'LAYER_FORMAT', archive: () => rawTar([oldGnuSparse('sparse', 100, [[10, 'abcd'], [12, 'efgh']])]) },
  { attack: 'sparse map naming more data than stored', code: 'LAYER_FORMAT', archive: () => rawTar([sparse01('sparse', 100, '10,50', 'short')]) },
  { attack: 'sparse fragment count disagreeing with the map', code: 'LAYER_FORMAT', archive: () => rawTar([sparse01('sparse', 100, '0,1,5,1', 'ab', '1')]) },
  {
    attack: 'sparse map records (PAX 0.0) out of order',
    code: 'LAYER_FORMAT',
    archive: () => rawTar([file('sparse', 'ab', { pax: [['GNU.sparse.numblocks', '1'], ['GNU.sparse.numbytes', '2'], ['GNU.sparse.offset', '0']] })]),
  },
  {
    attack: 'PAX 1.0 sparse map claiming more fragments than the data holds',
    code: 'LAYER_FORMAT',
    archive: () => rawTar([file('sparse', Buffer.concat([Buffer.from('999999999\n0\n'), Buffer.alloc(1024)]) as unknown as string, { pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '10' } })]),
  },
  { attack: 'PAX 1.0 sparse map in an entry too short for it', code: 'LAYER_FORMAT', archive: () => rawTar([file('sparse', 'x', { pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' } })]) },
  { attack: 'sparse map on a directory', code: 'LAYER_FORMAT', archive: () => rawTar([{ name: 'dir/', type: '5', pax: { 'GNU.sparse.map': '0,0', 'GNU.sparse.numblocks': '1' } }]) },
  {
    attack: 'old GNU sparse map of endless extension blocks',
    code: 'LIMIT_EXCEEDED',
    options: { maxHeaderBytes: 64 * 1024 },
    archive: () => {
      const extension = Buffer.alloc(512);
      extension[504] = 1;
      const blocks = Array.from({ length: 200 }, () => extension);
      return rawTar([{ ...oldGnuSparse('sparse', 1, []), data: Buffer.concat(blocks), size: 0, patch: (h) => void (h[482] = 1) }]);
    },
  },
  {
    attack: 'sparse bomb: gigabytes of holes in a few blocks',
    code: 'LIMIT_EXCEEDED',
    options: { maxTotalBytes: 1024 ** 3 },
    archive: () => rawTar([oldGnuSparse('sparse', 2 ** 33 - 1, [[2 ** 33 - 2, 'x']])]),
  },
  { attack: 'whiteout naming the parent directory', code: 'LAYER_FORMAT', archive: () => rawTar([file('a/.wh...', '')]) },
  { attack: 'not a tar archive at all', code: 'LAYER_FORMAT', archive: () => Buffer.from('this is not a tarball\n'.repeat(100)) },
  {
    attack: 'dot-dot behind bytes that are not UTF-8',
    code: 'UNSAFE_PATH',
    archive: () => rawTar([file('ok', 'x', { pax: { path: Buffer.concat([Buffer.from([0x66, 0xff, 0xfe]), Buffer.from('/../../../escaped')]) } })]),
  },
];

describe('hostile layers', () => {
  let sandbox: string;
  let target: string;

  beforeEach(() => {
    // The target sits two levels down, so `../..` escapes land inside the sandbox, where we can see them.
    sandbox = mkdtempSync(join(tmpdir(), 'strata-hostile-'));
    mkdirSync(join(sandbox, 'outside'));
    writeFileSync(join(sandbox, 'outside', 'secret'), 'do not touch\n');
    mkdirSync(join(sandbox, 'a', 'b'), { recursive: true });
    target = join(sandbox, 'a', 'b', 'target');
  });
  afterEach(() => rmSync(sandbox, { recursive: true, force: true }));

  it('has at least 15 attacks in the corpus', () => {
    expect(cases.length).toBeGreaterThanOrEqual(15);
  });

  // Directory mtimes change only when entries come or go, and those show up as entries themselves.
  const outsideOf = () => snapshotTree(sandbox, { ignoreDirMtime: true, skip: (path) => path === 'a/b/target' });

  for (const c of cases) {
    it(`refuses ${c.attack} (${c.code}), changing nothing outside`, async () => {
      const archive = join(sandbox, 'layer.tar');
      writeFileSync(archive, c.archive());
      const fresh = c.target === undefined;
      if (!fresh) {
        mkdirSync(target);
        c.target!(target);
      }
      const before = outsideOf();
      const error = await applyLayer(archive, target, c.options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, 'apply must fail').toBeDefined();
      expect((error as { code?: string }).code, String(error)).toBe(c.code);
      expect(diffSnapshots(before, outsideOf())).toEqual([]);
      expect(existsSync('/tmp/strata-absolute-escape')).toBe(false);
      // A fresh target is never left half-made; an existing one is marked incomplete.
      if (fresh) expect(existsSync(target)).toBe(false);
      else expect(isApplyIncomplete(target)).toBe(true);
      // Nobody that read it holds the layer open after, refused or not (an embedder meets many).
      for (const read of [() => mergedListing([archive]), () => TarLayer.open(archive), () => digestLayer(archive)]) await read().catch(() => {});
      expect(openOn(archive)).toEqual([]);
    });
  }

  it('the same hostile archive onto an existing target leaves it marked incomplete', async () => {
    mkdirSync(target);
    writeFileSync(join(target, 'lower'), 'from below\n');
    const archive = join(sandbox, 'layer.tar');
    writeFileSync(archive, rawTar([file('new'), file('../../escaped')]));
    await expect(applyLayer(archive, target)).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
    expect(isApplyIncomplete(target)).toBe(true);
    // Re-applying a good layer completes it and clears the mark.
    writeFileSync(archive, rawTar([file('new')]));
    await applyLayer(archive, target);
    expect(isApplyIncomplete(target)).toBe(false);
  });

  it('an absolute entry name lands inside the target, read from its root as containerd and Docker read it', async () => {
    const archive = join(sandbox, 'layer.tar');
    writeFileSync(archive, rawTar([file('/tmp/strata-absolute-escape', 'inside\n'), { name: '/tmp/h', type: '1', linkname: '/tmp/strata-absolute-escape' }]));
    const before = outsideOf();
    await applyLayer(archive, target);
    expect(diffSnapshots(before, outsideOf())).toEqual([]);
    expect(existsSync('/tmp/strata-absolute-escape')).toBe(false);
    expect(readFileSync(join(target, 'tmp/strata-absolute-escape'), 'utf8')).toBe('inside\n');
    expect(statSync(join(target, 'tmp/h')).ino).toBe(statSync(join(target, 'tmp/strata-absolute-escape')).ino);
  });

  it('an absolute symlink used as a parent stays inside the target (container view)', async () => {
    const archive = join(sandbox, 'layer.tar');
    writeFileSync(archive, rawTar([{ name: 'etc-link', type: '2', linkname: '/outside' }, { name: 'outside', type: '5', mode: 0o755 }, file('etc-link/secret', 'inside\n')]));
    const before = outsideOf();
    await applyLayer(archive, target);
    expect(diffSnapshots(before, outsideOf())).toEqual([]);
    expect(snapshotTree(target).get('outside/secret')?.size).toBe('inside\n'.length);
  });

  it('a regular file never writes through a symlink standing at its path', async () => {
    mkdirSync(target);
    symlinkSync('../../../outside/secret', join(target, 'victim'));
    const archive = join(sandbox, 'layer.tar');
    writeFileSync(archive, rawTar([file('victim', 'replaced\n')]));
    const before = outsideOf();
    await applyLayer(archive, target);
    expect(diffSnapshots(before, outsideOf())).toEqual([]);
    expect(snapshotTree(target).get('victim')?.type).toBe('file');
  });
});
