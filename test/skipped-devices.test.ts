/**
 * Device nodes left out of an apply (`devices: 'skip'`), as Docker and containerd leave them out in a user
 * namespace: what stood at a skipped device's path is gone all the same, links to it are left out with it,
 * a later entry at its path still wins, and in overlay layout the kernel's merged view shows what the plain
 * apply gives (a whiteout hides what is below). Without root, the command refuses devices unless told to
 * skip them, and leaves nothing behind when it refuses.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer } from '@strata/core';
import { needs } from './helpers/oracle.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

const strataCli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

const dir = (name: string): RawEntry => ({ name: `${name}/`, type: '5', mode: 0o755 });
const file = (name: string, data: string): RawEntry => ({ name, data });
const char = (name: string, major: number, minor: number): RawEntry => ({ name, type: '3', mode: 0o666, devmajor: major, devminor: minor });
const link = (name: string, target: string): RawEntry => ({ name, type: '1', linkname: target });

const base = rawTar([dir('dev'), file('dev/console', 'a file below\n'), file('dev/null', 'kept\n'), file('dev/twice', 'below\n'), dir('keep'), file('keep/a', 'a\n')]);

const devices = rawTar([
  dir('dev'),
  char('dev/console', 5, 1), // replaces a file below
  { name: 'dev/sda', type: '4', mode: 0o660, devmajor: 8, devminor: 0 }, // nothing below
  link('dev/disk', 'dev/sda'), // a link after its skipped target
  link('dev/early', 'dev/late'), // a link before its target, which is skipped
  char('dev/late', 1, 3),
  file('dev/twice', 'this layer\n'),
  char('dev/twice', 1, 5), // the last entry for a path wins: a skipped device
  char('dev/back', 1, 7),
  file('dev/back', 'the file wins\n'), // ... and here a file
  { name: 'dev/fifo', type: '6', mode: 0o600 }, // not a device: made
]);

const expectedPaths = ['dev', 'dev/null', 'dev/back', 'dev/fifo', 'keep', 'keep/a'];
/** Entries left out, each with its warning: every device and link to one (dev/back's device too, before its file came). */
const skipped = ['dev/console', 'dev/sda', 'dev/disk', 'dev/late', 'dev/early', 'dev/twice', 'dev/back'];

describe.skipIf(!needs('root'))('device nodes skipped', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-skip-dev-'));
    chmodSync(work, 0o755);
    writeFileSync(join(work, 'base.tar'), base);
    writeFileSync(join(work, 'devices.tar'), devices);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('plain: each device and each link to one is left out with a warning, and what stood there is gone', async () => {
    const target = join(work, 'plain');
    await applyLayer(join(work, 'base.tar'), target);
    const warnings: string[] = [];
    const result = await applyLayer(join(work, 'devices.tar'), target, { devices: 'skip', onWarning: (message, path) => warnings.push(`${path}: ${message}`) });
    expect(result.entries).toBe(11);
    const tree = snapshotTree(target);
    expect([...tree.keys()].sort()).toEqual([...expectedPaths].sort());
    expect(tree.get('dev/back')).toMatchObject({ type: 'file', size: 'the file wins\n'.length });
    expect(tree.get('dev/fifo')).toMatchObject({ type: 'fifo' });
    expect(warnings.map((w) => w.split(':')[0]).sort()).toEqual([...skipped].sort());
    expect(warnings).toContain('dev/sda: block device 8:0 not made: devices are skipped here');
    expect(warnings).toContain('dev/disk: hardlink to the skipped device "dev/sda" not made: devices are skipped here');
  });

  it('a skipped device whose path a later entry makes a directory is that directory: a hardlink to it is refused as one', async () => {
    const layer = join(work, 'device-then-dir.tar');
    writeFileSync(layer, rawTar([char('x', 1, 3), file('x/child', 'c\n'), link('h', 'x')]));
    await expect(applyLayer(layer, join(work, 'device-then-dir'), { devices: 'skip' })).rejects.toMatchObject({ code: 'LAYER_FORMAT', message: expect.stringContaining('hardlink to a directory') });
    writeFileSync(layer, rawTar([char('x', 1, 3), file('x/child', 'c\n')]));
    await applyLayer(layer, join(work, 'device-then-dir'), { devices: 'skip' });
    expect(snapshotTree(join(work, 'device-then-dir')).get('x/child')).toMatchObject({ type: 'file' });
  });

  it('the same layer as root with devices created makes them (the skip is the option, not the process)', async () => {
    const target = join(work, 'created');
    await applyLayer(join(work, 'devices.tar'), target);
    const tree = snapshotTree(target);
    expect(tree.get('dev/console')).toMatchObject({ type: 'char' });
    expect(tree.get('dev/early')?.linkGroup).toBe(tree.get('dev/late')?.linkGroup);
    expect(tree.get('dev/late')?.linkGroup).toBeDefined();
  });

  it.skipIf(!needs('overlay'))('overlay: the kernel’s merged view of the skipping layer over the base is the plain result', async () => {
    for (const namespace of ['trusted', 'user'] as const) {
      const lower = join(work, `${namespace}-lower`);
      const layer = join(work, `${namespace}-layer`);
      await applyLayer(join(work, 'base.tar'), lower, { layout: 'overlay', xattrNamespace: namespace });
      await applyLayer(join(work, 'devices.tar'), layer, { layout: 'overlay', xattrNamespace: namespace, devices: 'skip' });
      // In the layer's own directory, whiteouts where devices stood: nothing below shows through them.
      expect(snapshotTree(layer).get('dev/console')).toMatchObject({ type: 'char', rdev: '0' });
      const mountpoint = join(work, `${namespace}-merged`);
      mkdirSync(mountpoint);
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layer}:${lower}${namespace === 'user' ? ',userxattr' : ''}`, mountpoint]);
      try {
        const noMarkers = { ignoreDirMtime: true, ignoreXattr: (n: string) => n.includes('overlay.') || n.startsWith('user.strata') };
        const merged = snapshotTree(mountpoint, noMarkers);
        expect([...merged.keys()].sort()).toEqual([...expectedPaths].sort());
        expect(diffSnapshots(snapshotTree(join(work, 'plain'), noMarkers), merged)).toEqual([]);
      } finally {
        execFileSync('umount', [mountpoint]);
      }
    }
  });

  it('without root, `strata apply` refuses devices, naming the way round unless told to refuse, and leaves no target; --devices skip applies the rest', () => {
    const home = join(work, 'nobody');
    mkdirSync(home);
    chownSync(home, 65534, 65534);
    const asNobody = (...args: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, strataCli, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const refused = asNobody('apply', join(work, 'devices.tar'), join(home, 'refused'));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe('strata: UNSUPPORTED: device nodes are not permitted here: "dev/console" (only root can make them; the devices option can skip them)\n');
    expect(existsSync(join(home, 'refused'))).toBe(false);
    // Refused because the caller asked: no way round offered.
    expect(asNobody('apply', '--devices', 'refuse', join(work, 'devices.tar'), join(home, 'refused')).stderr).toBe('strata: UNSUPPORTED: device nodes are not permitted here: "dev/console"\n');
    const applied = asNobody('apply', '--devices', 'skip', join(work, 'devices.tar'), join(home, 'applied'));
    expect(applied.status, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(applied.stderr.split('\n').filter(Boolean)).toHaveLength(skipped.length);
    expect([...snapshotTree(join(home, 'applied')).keys()].sort()).toEqual(['dev', 'dev/back', 'dev/fifo']);
  });
});
