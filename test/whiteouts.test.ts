/**
 * Whiteouts in both forms. Plain form is checked against the expected tree; overlay form is mounted with
 * the kernel's overlayfs and its merged view must equal the plain-form result.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer } from '@strata/core';
import { getXattr } from './helpers/host.js';
import { needs } from './helpers/oracle.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

const dir = (name: string): RawEntry => ({ name: `${name}/`, type: '5', mode: 0o755 });
const file = (name: string, data: string): RawEntry => ({ name, data });
const wh = (name: string): RawEntry => ({ name, data: '' });

const base = rawTar([
  dir('etc'),
  file('etc/keep', 'keep\n'),
  file('etc/secret', 'secret\n'),
  dir('gone'),
  file('gone/a', 'a\n'),
  dir('gone/sub'),
  file('gone/sub/b', 'b\n'),
  dir('opq'),
  file('opq/lower1', '1\n'),
  dir('opq/lowerdir'),
  file('opq/lowerdir/x', 'x\n'),
  file('opq/shared', 'lower\n'),
  dir('readd'),
  file('readd/old', 'old\n'),
  file('readd-file', 'v1\n'),
  dir('readd-after'),
  file('readd-after/old', 'old\n'),
  dir('readd-implicit'),
  file('readd-implicit/old', 'old\n'),
]);

// The second layer: a file whiteout, a directory whiteout, an opaque directory (its marker after its
// siblings), a whiteout of a path that never existed, and a whited-out path re-added in the same layer.
const upper = rawTar([
  wh('etc/.wh.secret'),
  wh('.wh.gone'),
  dir('opq'),
  file('opq/shared', 'upper\n'),
  file('opq/new', 'new\n'),
  wh('opq/.wh..wh..opq'),
  wh('.wh.never-existed'),
  wh('.wh.readd'),
  dir('readd'),
  file('readd/new', 'new\n'),
  wh('.wh.readd-file'),
  file('readd-file', 'v2\n'),
  // The same, with the directory before its whiteout, and with no entry for the directory at all.
  dir('readd-after'),
  file('readd-after/new', 'new\n'),
  wh('.wh.readd-after'),
  wh('.wh.readd-implicit'),
  file('readd-implicit/new', 'new\n'),
]);

const expected = ['etc', 'etc/keep', 'opq', 'opq/new', 'opq/shared', 'readd', 'readd/new', 'readd-file', 'readd-after', 'readd-after/new', 'readd-implicit', 'readd-implicit/new'];

describe.skipIf(!needs('root'))('whiteouts', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-wh-'));
    writeFileSync(join(work, 'base.tar'), base);
    writeFileSync(join(work, 'upper.tar'), upper);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('plain form: file, directory, opaque, missing-path and re-added whiteouts', async () => {
    const target = join(work, 'plain');
    await applyLayer(join(work, 'base.tar'), target);
    await applyLayer(join(work, 'upper.tar'), target);
    const tree = snapshotTree(target);
    expect([...tree.keys()].sort()).toEqual([...expected].sort());
    expect(tree.get('opq/shared')?.size).toBe('upper\n'.length);
    expect(tree.get('readd-file')?.size).toBe('v2\n'.length);
  });

  describe.skipIf(!needs('overlay'))('overlay form, mounted by the kernel', () => {
    for (const namespace of ['trusted', 'user'] as const) {
      it(`merged view equals the plain result (${namespace}.overlay.* markers)`, async () => {
        const lower = join(work, `${namespace}-lower`);
        const layer = join(work, `${namespace}-layer`);
        await applyLayer(join(work, 'base.tar'), lower, { layout: 'overlay', xattrNamespace: namespace });
        await applyLayer(join(work, 'upper.tar'), layer, { layout: 'overlay', xattrNamespace: namespace });
        // The layer directory holds kernel-format markers.
        const layerTree = snapshotTree(layer);
        expect(layerTree.get('etc/secret')).toMatchObject({ type: 'char', rdev: '0' });
        expect(layerTree.get('gone')).toMatchObject({ type: 'char', rdev: '0' });
        expect(layerTree.get('never-existed')).toMatchObject({ type: 'char', rdev: '0' });
        expect(layerTree.has('readd/old')).toBe(false);
        expect(Buffer.from(getXattr(join(layer, 'opq'), `${namespace}.overlay.opaque`) ?? []).toString()).toBe('y');

        const mountpoint = join(work, `${namespace}-merged`);
        mkdirSync(mountpoint);
        const options = `lowerdir=${layer}:${lower}${namespace === 'user' ? ',userxattr' : ''}`;
        execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', options, mountpoint]);
        try {
          const plain = join(work, 'plain');
          const noMarkers = { ignoreDirMtime: true, ignoreXattr: (n: string) => n.includes('overlay.') || n.startsWith('user.strata') };
          expect(diffSnapshots(snapshotTree(plain, noMarkers), snapshotTree(mountpoint, noMarkers))).toEqual([]);
        } finally {
          execFileSync('umount', [mountpoint]);
        }
      });
    }
  });
});
