/**
 * containerd's snapshotter conformance suite (core/snapshots/testsuite), rewritten for strata's API and run
 * against every driver: overlay (kernel mounts), userspace (strata's views, no mounts) and native (full
 * copies, bind mounts). Trees are changed and read through the driver's own means (a kernel mount, or the
 * userspace view), and each is compared with the same changes applied to one plain directory.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSnapshotter, type DriverName, type Info, type Snapshotter } from '../src/index.js';
import { needs } from '../../../test/helpers/oracle.js';
import { apply, checkSnapshots, chown, createDir, createFile, link, removeAll, rename, withTree } from './helpers.js';

const drivers: Array<[DriverName, boolean]> = [
  ['overlay', needs('root', 'overlay')],
  ['userspace', true],
  ['native', needs('root')],
];

const gcRoot = { labels: { 'containerd.io/gc.root': new Date().toISOString() } };

for (const [driver, available] of drivers) {
  describe.skipIf(!available)(`snapshotter conformance (${driver})`, () => {
    let tmp: string;
    let work: string;
    let sn: Snapshotter;
    beforeEach(async () => {
      tmp = mkdtempSync(join(tmpdir(), `strata-suite-${driver}-`));
      work = join(tmp, 'work');
      mkdirSync(work);
      sn = await openSnapshotter(join(tmp, 'root'), { driver });
    });
    afterEach(async () => {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
    });

    it('Basic: prepare, change, commit, stack, view, remove in order', async () => {
      const initial = apply(createFile('foo', 'foo\n', 0o777), createDir('a', 0o755), createDir('a/b', 0o755), createDir('a/b/c', 0o755));
      const diff = apply(createFile('bar', 'bar\n', 0o777), createFile('foo', 'bar\n', 0o777), removeAll('a/b'));
      const mounts = await sn.prepare('preparing', undefined, gcRoot);
      expect(mounts.length).toBeGreaterThan(0);
      await withTree(sn, 'preparing', work, (tree) => initial(tree));
      await sn.commit('committed', 'preparing', gcRoot);
      const si = await sn.stat('committed');
      expect([si.parent, si.kind]).toEqual([undefined, 'committed']);
      await expect(sn.stat('preparing')).rejects.toMatchObject({ code: 'NOT_FOUND' });

      await sn.prepare('next', 'committed', gcRoot);
      const flat = join(tmp, 'flat');
      mkdirSync(flat);
      const { hostTree, pictureOfHost } = await import('./helpers.js');
      await initial(hostTree(flat));
      await withTree(sn, 'next', work, async (tree, picture) => {
        expect(await picture()).toEqual(pictureOfHost(flat));
        await diff(tree);
      });
      const ni = await sn.stat('next');
      expect([ni.parent, ni.kind]).toEqual(['committed', 'active']);
      await sn.commit('committed-next', 'next', gcRoot);
      const si2 = await sn.stat('committed-next');
      expect([si2.parent, si2.kind]).toEqual(['committed', 'committed']);
      await expect(sn.stat('next')).rejects.toMatchObject({ code: 'NOT_FOUND' });

      const walked = new Map<string, Info>();
      await sn.walk((info) => void walked.set(info.name, info));
      expect(walked.get('committed')).toEqual(si);
      expect(walked.get('committed-next')).toEqual(si2);

      await sn.view('nextnext', 'committed-next', gcRoot);
      await diff(hostTree(flat));
      await withTree(sn, 'nextnext', work, async (_tree, picture) => expect(await picture()).toEqual(pictureOfHost(flat)));
      await sn.remove('nextnext');
      await expect(sn.remove('committed')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('remove') });
      await sn.remove('committed-next');
      await sn.remove('committed');
    });

    it('StatActive: a prepared snapshot is active, with no parent', async () => {
      await sn.prepare('preparing', undefined, gcRoot);
      await withTree(sn, 'preparing', work, (tree) => createFile('foo', 'foo\n', 0o777)(tree));
      const si = await sn.stat('preparing');
      expect([si.name, si.kind, si.parent]).toEqual(['preparing', 'active', undefined]);
    });

    it('StatCommitted: a committed snapshot is committed, with no parent', async () => {
      await sn.prepare('preparing', undefined, gcRoot);
      await withTree(sn, 'preparing', work, (tree) => createFile('foo', 'foo\n', 0o777)(tree));
      await sn.commit('committed', 'preparing', gcRoot);
      const si = await sn.stat('committed');
      expect([si.name, si.kind, si.parent]).toEqual(['committed', 'committed', undefined]);
    });

    it('Transitivity: a grandparent is the parent of the parent', async () => {
      await sn.prepare('preparing');
      await withTree(sn, 'preparing', work, (tree) => createFile('foo', 'foo\n', 0o777)(tree));
      await sn.commit('snapA', 'preparing');
      await sn.prepare('next', 'snapA');
      await withTree(sn, 'next', work, (tree) => createFile('foo', 'foo bar\n', 0o777)(tree));
      await sn.commit('snapB', 'next');
      const [a, b] = [await sn.stat('snapA'), await sn.stat('snapB')];
      expect([a.parent, b.parent, (await sn.stat(b.parent!)).parent]).toEqual([undefined, 'snapA', undefined]);
    });

    it('PrepareView: a key taken by prepare or view cannot be taken again', async () => {
      await sn.prepare('preparing');
      await sn.commit('snapA', 'preparing');
      await sn.prepare('newlayer', 'snapA');
      await expect(sn.view('newlayer', 'snapA')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      await sn.prepare('prepLayer', 'snapA');
      await expect(sn.prepare('prepLayer', 'snapA')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      await sn.view('viewLayer', 'snapA');
      await expect(sn.view('viewLayer', 'snapA')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      await expect(sn.prepare('snapA', undefined)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    });

    it('Update: created and updated times, labels replaced whole or by field path, immutable fields refused', async () => {
      const t1 = Date.now();
      await base(sn);
      const t2 = Date.now();
      const cases: Array<[string, Info['kind'], string | undefined]> = [
        ['c1', 'committed', undefined],
        ['c2', 'committed', 'c1'],
        ['a1', 'active', 'c2'],
        ['a2', 'active', undefined],
        ['v1', 'view', 'c2'],
        ['v2', 'view', undefined],
      ];
      for (const [name, kind, parent] of cases) {
        const st = await sn.stat(name);
        expect(st.created.getTime()).toBeGreaterThanOrEqual(t1);
        expect(st.created.getTime()).toBeLessThanOrEqual(t2);
        expect(st.updated).toEqual(st.created);
        expect([st.kind, st.parent, st.name]).toEqual([kind, parent, name]);
        const rootTime = new Date().toISOString();
        let expected: Record<string, string> = { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': rootTime };
        const u1 = Date.now();
        let updated = await sn.update({ name, labels: expected, parent: 'doesnotexist' });
        const u2 = Date.now();
        expect(updated.created).toEqual(st.created);
        expect(updated.updated.getTime()).toBeGreaterThanOrEqual(u1);
        expect(updated.updated.getTime()).toBeLessThanOrEqual(u2);
        expect([updated.kind, updated.parent, updated.name]).toEqual([kind, parent, name]);
        expect(updated.labels).toEqual(expected);
        expected = { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': rootTime };
        updated = await sn.update({ name, labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
        expect(updated.labels).toEqual(expected);
        expected = { l4: 'v4', 'containerd.io/gc.root': rootTime };
        updated = await sn.update({ name, labels: expected }, ['labels']);
        expect(updated.labels).toEqual(expected);
        await expect(sn.update({ name, parent: 'doesnotexist' }, ['parent'])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
    });

    it('Remove: keys and names are reusable once removed or committed', async () => {
      await sn.prepare('committed-a');
      await sn.commit('committed-1', 'committed-a');
      await sn.prepare('reuse-1', 'committed-1');
      await sn.remove('reuse-1');
      await sn.view('reuse-1', 'committed-1');
      await sn.remove('reuse-1');
      await sn.prepare('reuse-1');
      await sn.remove('committed-1');
      await sn.commit('committed-1', 'reuse-1');
    });

    it('Walk: filters on kind, name, parent and labels; several filters are alternatives', async () => {
      const opt = (extra: Record<string, string> = {}) => ({ labels: { 'containerd.io/gc.root': 'check-walk', ...extra } });
      await sn.prepare('a-np', undefined, opt());
      await sn.prepare('p-tmp', undefined, opt());
      await sn.commit('p', 'p-tmp', opt());
      await sn.prepare('a', 'p', opt());
      await sn.view('v', 'p', opt());
      await sn.prepare('p-wl-tmp', undefined, opt());
      await sn.commit('p-wl', 'p-wl-tmp', opt({ l: '1' }));
      await sn.prepare('a-wl', 'p-wl', opt({ l: '2' }));
      await sn.view('v-wl', 'p-wl', opt({ l: '3' }));
      await sn.prepare('a-np-wl', undefined, opt({ l: '2' }));
      const cases: Array<[string[], string[]]> = [
        [['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels."containerd.io/gc.root"==check-walk']],
        [['a-np', 'a', 'a-wl', 'a-np-wl'], ['kind==active,labels."containerd.io/gc.root"==check-walk']],
        [['v', 'v-wl'], ['kind==view,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'p-wl'], ['kind==committed,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'a-np-wl'], ['name==p', 'name==a-np-wl']],
        [['a-wl'], ['name==a-wl,labels.l']],
        [['a', 'v'], ['parent==p']],
        [['a', 'v', 'a-wl', 'v-wl'], ['parent!="",labels."containerd.io/gc.root"==check-walk']],
        [['p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels.l']],
        [['a-wl', 'a-np-wl'], ['labels.l==2']],
        [['a-wl', 'a-np-wl'], ['name~=^a-(np-)?wl$']],
      ];
      for (const [want, filters] of cases) {
        const got: string[] = [];
        await sn.walk((info) => void got.push(info.name), ...filters);
        expect(got.sort(), filters.join(' | ')).toEqual([...want].sort());
      }
      await expect(sn.walk(() => {}, 'labels."unterminated')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('LayerFileUpdate: a file updated in an upper layer, across second boundaries', async () => {
      const l1 = apply(createDir('etc', 0o700), createFile('etc/hosts', 'mydomain 10.0.0.1', 0o644), createFile('etc/profile', 'PATH=/usr/bin', 0o644));
      const l2 = apply(createFile('etc/hosts', 'mydomain 10.0.0.2', 0o644), createFile('etc/profile', 'PATH=/usr/bin', 0o666), createDir('root', 0o700), createFile('root/.bashrc', 'PATH=/usr/sbin:/usr/bin', 0o644));
      for (let i = 0; i < 3; i++) {
        await checkSnapshots(sn, work, l1, l2);
        await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5)); // the next second
      }
    });

    it('RemoveDirectoryInLowerLayer: a directory removed and re-created hides what was in it', async () => {
      await checkSnapshots(
        sn,
        work,
        apply(createDir('lib', 0o700), createFile('lib/hidden', '', 0o644)),
        apply(removeAll('lib'), createDir('lib', 0o700), createFile('lib/not-hidden', '', 0o644)),
        apply(createFile('lib/newfile', '', 0o644)),
      );
    });

    it.skipIf(!needs('root'))('Chown: owners changed in an upper layer', async () => {
      await checkSnapshots(
        sn,
        work,
        apply(createDir('opt', 0o700), createDir('opt/a', 0o700), createDir('opt/a/b', 0o700), createFile('opt/a/b/file.txt', 'hello', 0o644)),
        apply(chown('opt', 1, 1), chown('opt/a', 1, 1), chown('opt/a/b', 1, 1), chown('opt/a/b/file.txt', 1, 1)),
      );
    });

    it.skipIf(!needs('root'))('DirectoryPermissionOnCommit: directory owners and modes survive commits, removals and re-creation', async () => {
      await checkSnapshots(
        sn,
        work,
        apply(
          createDir('dir1', 0o700),
          createDir('dir2', 0o700),
          createDir('dir3', 0o700),
          createDir('dir4', 0o700),
          createFile('dir4/f1', '...', 0o644),
          createDir('dir5', 0o700),
          createFile('dir5/f1', '...', 0o644),
          chown('dir1', 1, 1),
          chown('dir2', 1, 1),
          chown('dir3', 1, 1),
          chown('dir5', 1, 1),
          chown('dir5/f1', 1, 1),
        ),
        apply(chown('dir2', 0, 0), removeAll('dir3'), chown('dir4', 1, 1), chown('dir4/f1', 1, 1)),
        apply(createDir('dir3', 0o700), chown('dir3', 1, 1), removeAll('dir5'), createDir('dir5', 0o700), chown('dir5', 1, 1)),
      );
    });

    it('RemoveIntermediateSnapshot: a snapshot with children cannot be removed; top down it can', async () => {
      await sn.prepare('base');
      await sn.commit('committed-base', 'base');
      await sn.prepare('intermediate', 'committed-base');
      await sn.commit('committed-inter', 'intermediate');
      await sn.prepare('toplayer', 'committed-inter');
      await expect(sn.remove('committed-inter')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await sn.remove('toplayer');
      await sn.remove('committed-inter');
      await sn.remove('committed-base');
    });

    it('DeletedFilesInChildSnapshot: files deleted in a child stay deleted', async () => {
      await checkSnapshots(sn, work, apply(createFile('foo', 'foo\n', 0o777), createFile('foobar', 'foobar\n', 0o777)), apply(removeAll('foobar')), apply());
    });

    it('MoveFileFromLowerLayer: files moved (linked and removed) from a lower layer', async () => {
      await checkSnapshots(
        sn,
        work,
        apply(createDir('dir1', 0o700), createFile('dir1/f1', 'Hello', 0o644), createDir('dir2', 0o700), createFile('dir2/f2', '...', 0o644)),
        apply(createDir('dir3', 0o700), createFile('dir3/f1', 'Hello', 0o644), removeAll('dir1'), link('dir2/f2', 'dir3/f2'), removeAll('dir2/f2')),
      );
    });

    it('ViewReadonly: a view cannot be written (EROFS)', async () => {
      await sn.prepare('preparing');
      await sn.commit('committed', 'preparing');
      await sn.view('view', 'committed');
      if (driver !== 'userspace') {
        const target = join(work, 'view-mount');
        mkdirSync(target);
        await sn.mount('view', target);
        try {
          expect(() => writeFileSync(join(target, 'testfile'), 'testcontent')).toThrow(expect.objectContaining({ code: 'EROFS' }));
        } finally {
          await sn.unmount(target);
        }
      }
      const layer = await sn.open('view');
      await expect(layer.writeFile('/testfile', 'testcontent')).rejects.toMatchObject({ code: 'EROFS' });
      await expect(layer.mkdir('/d')).rejects.toMatchObject({ code: 'EROFS' });
      const committed = await sn.open('committed');
      await expect(committed.writeFile('/testfile', 'x')).rejects.toMatchObject({ code: 'EROFS' });
      await sn.remove('view');
      await sn.remove('committed');
    });

    it('StatInWalk: stat may be called from inside walk', async () => {
      await sn.prepare('stats-in-walk-c1-a');
      await sn.commit('stats-in-walk-c1', 'stats-in-walk-c1-a');
      await sn.prepare('stats-in-walk-c2-a', 'stats-in-walk-c1');
      await sn.commit('stats-in-walk-c2', 'stats-in-walk-c2-a');
      await sn.prepare('stats-in-walk-a1', 'stats-in-walk-c2');
      await sn.view('stats-in-walk-v1', 'stats-in-walk-c2');
      let n = 0;
      await sn.walk(async (info) => {
        expect(await sn.stat(info.name)).toEqual(info);
        n++;
      });
      expect(n).toBe(4);
    });

    it('CloseTwice: close is idempotent, and later calls fail cleanly', async () => {
      await sn.prepare('closeTwice-prepare');
      await sn.commit('closeTwice', 'closeTwice-prepare');
      await sn.remove('closeTwice');
      await sn.close();
      await sn.close();
      await expect(sn.stat('x')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    });

    it('RootPermission: the tree of a new snapshot is 0755', async () => {
      await sn.prepare('preparing');
      if (driver === 'userspace') {
        expect(((await (await sn.open('preparing')).stat('/')).mode & 0o7777).toString(8)).toBe('755');
      } else {
        await withTree(sn, 'preparing', work, async (tree) => expect((statSync(tree.path('.')).mode & 0o7777).toString(8)).toBe('755'));
      }
    });

    it('Rename: files renamed over files; directories with lower parts only where the driver can', async () => {
      const l1 = apply(createDir('dir1', 0o700), createDir('somefiles', 0o700), createFile('somefiles/f1', 'was here first!', 0o644), createFile('somefiles/f2', 'nothing interesting', 0o644));
      // Without redirect_dir the kernel refuses to rename a directory with lower parts (EXDEV), as strata's view does.
      const renames = [createFile('somefiles/f1-overwrite', 'new content 1', 0o644), rename('somefiles/f1-overwrite', 'somefiles/f1'), rename('somefiles/f2', 'somefiles/f3')];
      const l2 = driver === 'native' ? apply(rename('dir1', 'dir2'), ...renames) : apply(...renames);
      await checkSnapshots(sn, work, l1, l2);
    });

    it('128LayersMount: a chain of 128 layers reads as the same changes applied to one directory', async () => {
      const appliers = [apply(createFile('bottom', 'way at the bottom\n', 0o777), createFile('overwriteme', 'FIRST!\n', 0o777), createDir('addhere', 0o755), createDir('onlyme', 0o755), createFile('onlyme/bottom', 'bye!\n', 0o777))];
      for (let i = 1; i <= 127; i++) {
        appliers.push(apply(createFile('overwriteme', `${i} WAS HERE!\n`, 0o777), createFile(`addhere/file-${i}`, 'same\n', 0o755), removeAll('onlyme'), createDir('onlyme', 0o755), createFile(`onlyme/file-${i}`, 'only me!\n', 0o777)));
      }
      const { hostTree, pictureOfHost } = await import('./helpers.js');
      const flat = join(tmp, 'flat128');
      mkdirSync(flat);
      let parent: string | undefined;
      for (const [i, applier] of appliers.entries()) {
        await sn.prepare(`prepare-layer-${i}`, parent);
        await withTree(sn, `prepare-layer-${i}`, work, async (tree) => {
          await applier(tree);
        });
        await applier(hostTree(flat));
        parent = `committed-${i}`;
        await sn.commit(parent, `prepare-layer-${i}`);
      }
      await sn.view('fullview', parent);
      await withTree(sn, 'fullview', work, async (_tree, picture) => expect(await picture()).toEqual(pictureOfHost(flat)));
    }, 600_000);
  });
}

/** containerd's baseTestSnapshots: c1, c2 (on c1), a1 (on c2), a2, v1 (on c2), v2. */
async function base(sn: Snapshotter): Promise<void> {
  await sn.prepare('c1-a', undefined, gcRoot);
  await sn.commit('c1', 'c1-a', gcRoot);
  await sn.prepare('c2-a', 'c1', gcRoot);
  await sn.commit('c2', 'c2-a', gcRoot);
  await sn.prepare('a1', 'c2', gcRoot);
  await sn.prepare('a2', undefined, gcRoot);
  await sn.view('v1', 'c2', gcRoot);
  await sn.view('v2', undefined, gcRoot);
}
