/**
 * Interop with umoci: for the same change, the layer `umoci repack` writes and the layer strata's diff
 * writes, applied to the same base, give identical trees; GNU tar lists strata's layer without complaint.
 * And the layers `umoci insert` writes, which end without their end-of-archive blocks and inside their last
 * entry's padding (umoci#436; Debian's umoci 0.4.7 writes them so), and layers of GNU tar's sparse files,
 * import and unpack to umoci's own tree.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, cpSync, ftruncateSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, diffTrees, HostLayer, MergedView, writeChanges } from '@strata/core';
import { openImages } from '@strata/images';
import { setXattr } from './helpers/host.js';
import { needs } from './helpers/oracle.js';
import { diffSnapshots, snapshotTree, type NodeRecord } from './helpers/snapshot.js';
import { chainTree, picture } from './helpers/unpacked.js';

/** The newest layer blob of an image in an OCI layout. */
function lastLayer(layout: string, tag: string): string {
  const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const manifest = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
  const layers = (JSON.parse(readFileSync(blob(manifest.digest), 'utf8')) as { layers: Array<{ digest: string }> }).layers;
  return blob(layers[layers.length - 1]!.digest);
}

describe.skipIf(!needs('root', 'umoci', 'gnu-tar', 'overlay'))('interop with umoci', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-umoci-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("umoci repack's layer and strata's layer for the same change give identical trees", async () => {
    const layout = join(work, 'image');
    const umoci = (...args: string[]) => execFileSync('umoci', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    umoci('init', '--layout', layout);
    umoci('new', '--image', `${layout}:base`);
    umoci('unpack', '--image', `${layout}:base`, join(work, 'b1'));
    const made = join(work, 'b1', 'rootfs');
    cpSync('/usr/share/zoneinfo', join(made, 'zoneinfo'), { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(made, 'etc/old'), { recursive: true });
    writeFileSync(join(made, 'etc/old/conf'), 'old\n');
    writeFileSync(join(made, 'etc/keep'), 'keep\n');
    writeFileSync(join(made, 'etc/file-then-dir'), 'file\n');
    umoci('repack', '--image', `${layout}:base`, join(work, 'b1'));
    // The base as umoci itself gives it back (its times rounded as in every later unpack).
    umoci('unpack', '--image', `${layout}:base`, join(work, 'b0'));
    const base = join(work, 'b0', 'rootfs');

    // The change, made in a fresh unpack of the base.
    umoci('unpack', '--image', `${layout}:base`, join(work, 'b2'));
    const next = join(work, 'b2', 'rootfs');
    writeFileSync(join(next, 'zoneinfo/UTC'), 'changed content\n');
    chmodSync(join(next, 'etc/keep'), 0o600);
    rmSync(join(next, 'etc/old'), { recursive: true });
    unlinkSync(join(next, 'etc/file-then-dir'));
    mkdirSync(join(next, 'etc/file-then-dir'));
    writeFileSync(join(next, 'etc/file-then-dir/inside'), 'inside\n');
    mkdirSync(join(next, 'new/deep'), { recursive: true });
    writeFileSync(join(next, 'new/deep/file'), 'new\n');
    symlinkSync('../etc/keep', join(next, 'new/link'));
    linkSync(join(next, 'new/deep/file'), join(next, 'new/hard'));
    writeFileSync(join(next, 'new/xattr'), 'x\n');
    setXattr(join(next, 'new/xattr'), 'user.test', Buffer.from([0, 1, 2, 0xff]));
    rmSync(join(next, 'zoneinfo/Europe'), { recursive: true });
    // umoci rounds times to the nearest second where strata keeps them exactly: give the changed entries
    // whole-second times so both layers carry the same ones.
    const changed = ['zoneinfo/UTC', 'zoneinfo/Etc/UTC', 'etc/keep', 'etc/file-then-dir/inside', 'new/deep/file', 'new/link', 'new/xattr'];
    execFileSync('touch', ['-h', '-d', '@1700000000', ...changed.map((p) => join(next, p))]);

    const ours = join(work, 'strata.tar.gz');
    await writeChanges(diffTrees(new MergedView([new HostLayer(base)]), new MergedView([new HostLayer(next)])), ours, { compression: 'gzip' });
    umoci('repack', '--image', `${layout}:next`, join(work, 'b2'));
    const theirs = lastLayer(layout, 'next');

    const [a, b] = [join(work, 'with-umoci'), join(work, 'with-strata')];
    for (const target of [a, b]) execFileSync('cp', ['-a', base, target]); // cp -a keeps symlink times too
    await applyLayer(theirs, a);
    await applyLayer(ours, b);
    // Both reproduce the changed tree; compared with everything but directory times (each tool sets those
    // from its own walk) and sub-second times (umoci writes whole seconds).
    const options = { ignoreDirMtime: true, mtimeInSeconds: true };
    expect(diffSnapshots(snapshotTree(a, options), snapshotTree(b, options))).toEqual([]);
    expect(diffSnapshots(snapshotTree(next, options), snapshotTree(b, options))).toEqual([]);
    execFileSync('tar', ['-tzvf', ours], { stdio: ['ignore', 'pipe', 'pipe'] });
  });

  it("layers of GNU tar's sparse files import and unpack to umoci's tree (PAX 0.0, 0.1, 1.0); the old GNU form, which umoci refuses, to the source", async () => {
    const umoci = (...args: string[]) => execFileSync('umoci', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    const source = join(work, 'sparse-source');
    mkdirSync(join(source, 'data'), { recursive: true });
    const sparseFile = (name: string, size: number, data: Array<[number, string]>) => {
      const fd = openSync(join(source, 'data', name), 'w');
      for (const [offset, text] of data) writeSync(fd, Buffer.from(text), 0, text.length, offset);
      ftruncateSync(fd, size);
      closeSync(fd);
    };
    sparseFile('db', 64 * 1024 * 1024, [[0, 'header'], [40 * 1024 * 1024, 'record'.repeat(2000)]]);
    sparseFile('log', 3 * 1024 * 1024, [[3 * 1024 * 1024 - 4, 'end\n']]);
    /** An image of one layer per set of GNU tar flags, each layer replacing the files of the one before. */
    const image = (name: string, forms: string[][]) => {
      const layout = join(work, name);
      umoci('init', '--layout', layout);
      umoci('new', '--image', `${layout}:s`);
      for (const flags of forms) {
        const tar = join(work, 'sparse-layer.tar');
        execFileSync('tar', ['--sparse', ...flags, '--numeric-owner', '--owner=0', '--group=0', '-C', source, '-cf', tar, 'data']);
        umoci('raw', 'add-layer', '--image', `${layout}:s`, tar);
        rmSync(tar);
      }
      return layout;
    };
    const pax = image('sparse-pax', ['0.0', '0.1', '1.0'].map((version) => ['--format=posix', `--sparse-version=${version}`]));
    const gnu = image('sparse-gnu', [['--format=gnu']]);
    umoci('unpack', '--image', `${pax}:s`, join(work, 'sparse-bundle'));
    const expected = picture(join(work, 'sparse-bundle', 'rootfs'));
    expect(expected.get('data/db')).toMatchObject({ type: 'file', size: 64 * 1024 * 1024 });
    // umoci, like containerd, takes Go's type flag for an old GNU sparse file as unknown.
    expect(() => umoci('unpack', '--image', `${gnu}:s`, join(work, 'sparse-gnu-bundle'))).toThrow(/unknown typeflag/);

    const images = await openImages(join(work, 'sparse-root'), { driver: 'overlay' });
    try {
      await images.import(pax, { name: 'example.com/sparse-pax' });
      const unpacked = await images.unpack('example.com/sparse-pax:s');
      expect(diffSnapshots(expected, await chainTree(images, unpacked.chainID!, work))).toEqual([]);
      await images.import(gnu, { name: 'example.com/sparse-gnu' });
      const old = await images.unpack('example.com/sparse-gnu:s');
      const tree = await chainTree(images, old.chainID!, work);
      for (const name of ['data/db', 'data/log']) expect(tree.get(name)).toMatchObject({ type: 'file', sha256: expected.get(name)!.sha256 });
    } finally {
      await images.close();
    }
  });

  it("imports and unpacks the layers umoci insert writes, cut short as they are, to umoci's tree", async () => {
    const layout = join(work, 'inserted');
    const umoci = (...args: string[]) => execFileSync('umoci', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    umoci('init', '--layout', layout);
    umoci('new', '--image', `${layout}:t`);
    const source = join(work, 'insert-source');
    mkdirSync(join(source, 'tree/sub'), { recursive: true });
    writeFileSync(join(source, 'one'), 'one\n');
    writeFileSync(join(source, 'tree/sub/two'), 'x'.repeat(700));
    symlinkSync('sub/two', join(source, 'tree/link'));
    umoci('insert', '--image', `${layout}:t`, join(source, 'one'), '/etc/one');
    umoci('insert', '--image', `${layout}:t`, join(source, 'tree'), '/opt/tree');
    // What makes these layers odd: GNU tar stops at them with "Unexpected EOF" (Go's reader, umoci's own,
    // ends quietly). A fixed umoci would write whole archives, and this test would want another source.
    const layer = execFileSync('sh', ['-c', `gzip -dc '${lastLayer(layout, 't')}' | tar -t >/dev/null 2>&1; echo $?`]).toString().trim();
    expect(layer, 'umoci insert wrote a whole archive').not.toBe('0');

    umoci('unpack', '--image', `${layout}:t`, join(work, 'inserted-bundle'));
    // `etc` and `opt` are named by no layer, only implied: each tool makes them when it unpacks, timed then.
    const implied = (tree: Map<string, NodeRecord>) => {
      for (const path of ['etc', 'opt']) tree.set(path, { ...tree.get(path)!, mtimeNs: 'made at unpack' });
      return tree;
    };
    const expected = implied(picture(join(work, 'inserted-bundle', 'rootfs')));
    const images = await openImages(join(work, 'inserted-root'), { driver: 'overlay' });
    try {
      await images.import(layout, { name: 'example.com/inserted' });
      const unpacked = await images.unpack('example.com/inserted:t');
      expect(unpacked.layers.map((l) => l.applied)).toEqual([true, true]);
      const ours = implied(await chainTree(images, unpacked.chainID!, work));
      expect(ours.get('opt/tree/sub/two')).toMatchObject({ type: 'file', size: 700 });
      expect(diffSnapshots(expected, ours)).toEqual([]);
    } finally {
      await images.close();
    }
  });
});
