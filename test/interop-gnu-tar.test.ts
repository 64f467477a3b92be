/**
 * Interop both ways with GNU tar on a real tree of 10,000+ entries: GNU tar's posix, gnu and ustar archives
 * (and one of absolute names, and sparse files in each sparse format) applied by strata equal GNU tar's own
 * extraction; strata's layers extracted by GNU tar give back the source.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, packDirectory } from '@strata/core';
import { buildRealTree } from './helpers/fixtures.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

const XATTR_FLAGS = ['--xattrs', '--xattrs-include=*'];

describe.skipIf(!needs('root', 'gnu-tar'))('interop with GNU tar', () => {
  let work: string;
  let tree: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-interop-'));
    tree = join(work, 'tree');
    buildRealTree(tree);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('the fixture is a real tree of 10,000+ entries', () => {
    const picture = snapshotTree(tree, { ignoreMtime: true });
    expect(picture.size).toBeGreaterThan(10_000);
    // Names that are not UTF-8 among them (keyed with strata's escapes), their bytes on disk.
    expect(picture.get('extended/d\udce9/caf\udce9')).toMatchObject({ type: 'file', linkGroup: 'extended/d\udce9/caf\udce9', xattrs: { 'user.latin': '31' } });
    expect(picture.get('extended/link\udce9')).toMatchObject({ type: 'symlink', linkname: 'd\udce9/caf\udce9' });
  });

  const formats = [
    { format: 'posix', members: ['.'], flags: XATTR_FLAGS },
    { format: 'gnu', members: ['.'], flags: [] },
    { format: 'ustar', members: ['include', 'zoneinfo', 'portable', 'stdio-hardlink.h'], flags: [] },
  ] as const;

  for (const { format, members, flags } of formats) {
    it(`GNU tar --format=${format} archive: strata apply equals GNU tar extraction`, async () => {
      const archive = join(work, `${format}.tar`);
      execFileSync('tar', [`--format=${format}`, ...flags, '--numeric-owner', '-C', tree, '-cf', archive, ...members]);
      const reference = join(work, `${format}-gnu`);
      mkdirSync(reference);
      execFileSync('tar', [...XATTR_FLAGS, '--numeric-owner', '-xpf', archive, '-C', reference]);
      const ours = join(work, `${format}-strata`);
      await applyLayer(archive, ours);
      const want = snapshotTree(reference);
      expect(want.size).toBeGreaterThan(10_000);
      expect(diffSnapshots(want, snapshotTree(ours))).toEqual([]);
      rmSync(reference, { recursive: true, force: true });
      rmSync(ours, { recursive: true, force: true });
    });
  }

  it('GNU tar --absolute-names archive (names from /): strata apply equals GNU tar extraction, both from the target root', async () => {
    const archive = join(work, 'absolute.tar');
    const source = join(tree, 'zoneinfo');
    execFileSync('tar', ['--format=posix', '--absolute-names', '--numeric-owner', '-cf', archive, source]);
    expect(execFileSync('tar', ['-P', '-tf', archive], { encoding: 'utf8' }).startsWith('/')).toBe(true);
    const reference = join(work, 'absolute-gnu');
    mkdirSync(reference);
    execFileSync('tar', ['--numeric-owner', '-xpf', archive, '-C', reference], { stdio: ['ignore', 'pipe', 'pipe'] }); // strips the leading /
    const ours = join(work, 'absolute-strata');
    await applyLayer(archive, ours);
    const want = snapshotTree(join(reference, source));
    expect(want.size).toBeGreaterThan(1_000);
    expect(diffSnapshots(want, snapshotTree(join(ours, source)))).toEqual([]);
    rmSync(reference, { recursive: true, force: true });
    rmSync(ours, { recursive: true, force: true });
  });

  it('GNU tar --sparse archives (gnu, and posix in sparse versions 0.0, 0.1, 1.0): strata apply equals GNU tar extraction, holes and all', async () => {
    const source = join(work, 'sparse-source');
    mkdirSync(source);
    const sparseFile = (name: string, size: number, data: Array<[number, string]>) => {
      const fd = openSync(join(source, name), 'w');
      for (const [offset, text] of data) writeSync(fd, Buffer.from(text), 0, text.length, offset);
      ftruncateSync(fd, size);
      closeSync(fd);
    };
    sparseFile('data-then-hole', 20 * 1024 * 1024, [[0, 'head'], [5 * 1024 * 1024, 'x'.repeat(10_000)]]);
    sparseFile('hole-then-data', 3 * 1024 * 1024 + 3, [[3 * 1024 * 1024, 'end']]);
    sparseFile('all-hole', 8 * 1024 * 1024, []);
    sparseFile('dense', 5000, [[0, 'd'.repeat(5000)]]);
    for (const [format, version] of [['gnu', undefined], ['posix', '0.0'], ['posix', '0.1'], ['posix', '1.0']] as const) {
      const archive = join(work, `sparse-${format}-${version}.tar`);
      const versionFlags = version === undefined ? [] : [`--sparse-version=${version}`];
      execFileSync('tar', ['--sparse', `--format=${format}`, ...versionFlags, '--numeric-owner', '-C', source, '-cf', archive, '.']);
      expect(statSync(archive).size, 'GNU tar stored the files sparse').toBeLessThan(1024 * 1024);
      const reference = join(work, 'sparse-gnu');
      mkdirSync(reference);
      execFileSync('tar', ['--numeric-owner', '-xpf', archive, '-C', reference]);
      const ours = join(work, 'sparse-strata');
      await applyLayer(archive, ours);
      const want = snapshotTree(reference);
      expect(want.get('data-then-hole')?.size).toBe(20 * 1024 * 1024);
      expect(diffSnapshots(want, snapshotTree(ours)), `${format} ${version ?? ''}`).toEqual([]);
      for (const name of ['data-then-hole', 'hole-then-data', 'all-hole', 'dense']) {
        expect(statSync(join(ours, name)).blocks, `${name}: blocks allocated`).toBe(statSync(join(reference, name)).blocks);
      }
      rmSync(reference, { recursive: true, force: true });
      rmSync(ours, { recursive: true, force: true });
    }
  });

  it('a strata layer extracted by GNU tar gives back the source tree', async () => {
    const layer = join(work, 'strata.tar');
    await packDirectory(tree, layer);
    const extracted = join(work, 'strata-gnu');
    mkdirSync(extracted);
    execFileSync('tar', [...XATTR_FLAGS, '--numeric-owner', '-xpf', layer, '-C', extracted]);
    expect(diffSnapshots(snapshotTree(tree), snapshotTree(extracted))).toEqual([]);
    // And GNU tar lists it without a warning.
    const listing = execFileSync('tar', ['-tvf', layer], { stdio: ['ignore', 'pipe', 'pipe'] });
    expect(listing.length).toBeGreaterThan(0);
    rmSync(extracted, { recursive: true, force: true });
  });

  it('a strata layer applied by strata gives back the source tree', async () => {
    const layer = join(work, 'strata-zstd.tar.zst');
    await packDirectory(tree, layer, { compression: 'zstd' });
    const applied = join(work, 'strata-strata');
    await applyLayer(layer, applied);
    expect(diffSnapshots(snapshotTree(tree), snapshotTree(applied))).toEqual([]);
    rmSync(applied, { recursive: true, force: true });
  });
});
