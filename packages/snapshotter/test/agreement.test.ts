/**
 * Kernel and userspace agree: one root serves both, so a chain of committed snapshots and an active one,
 * changed through real kernel overlay mounts, reads the same through the userspace driver's views, and
 * changes made through the userspace views read the same through kernel mounts.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSnapshotter, type DriverName } from '../src/index.js';
import { needs } from '../../../test/helpers/oracle.js';
import { apply, chown, createDir, createFile, link, pictureOfHost, pictureOfLayer, removeAll, rename, symlink, withTree, type Applier } from './helpers.js';

/** Three committed layers and an active one: files, directories re-created over deletions, links, owners. */
const CHANGES: Applier[] = [
  apply(createDir('etc', 0o755), createFile('etc/hosts', 'one\n', 0o644), createDir('var', 0o755), createDir('var/lib', 0o700), createFile('var/lib/db', 'data', 0o600), createFile('bin-sh', '#!', 0o755), symlink('bin-sh', 'sh')),
  apply(createFile('etc/hosts', 'two\n', 0o644), removeAll('var/lib'), createDir('var/lib', 0o750), createFile('var/lib/new', 'new', 0o644), link('bin-sh', 'bin-sh-link'), chown('etc', 1, 2)),
  apply(removeAll('sh'), createDir('sh', 0o755), createFile('sh/inside', 'x', 0o644), rename('etc/hosts', 'etc/hosts.old'), createFile('etc/hosts', 'three\n', 0o600)),
  apply(removeAll('etc'), createDir('etc', 0o700), createFile('etc/only', 'top', 0o644), removeAll('bin-sh'), createFile('var/lib/new', 'changed', 0o640)),
];

async function build(root: string, work: string, driver: DriverName): Promise<void> {
  const sn = await openSnapshotter(root, { driver });
  try {
    let parent: string | undefined;
    for (const [i, change] of CHANGES.entries()) {
      const key = i === CHANGES.length - 1 ? 'active' : `a${i}`;
      await sn.prepare(key, parent);
      await withTree(sn, key, work, (tree) => change(tree));
      if (key === 'active') break;
      parent = `c${i}`;
      await sn.commit(parent, key);
    }
    await sn.view('view', parent);
  } finally {
    await sn.close();
  }
}

/** The pictures of the active snapshot and the view, as `driver` shows them. */
async function pictures(root: string, work: string, driver: DriverName): Promise<unknown> {
  const sn = await openSnapshotter(root, { driver });
  try {
    const out: Record<string, unknown> = {};
    for (const key of ['active', 'view']) {
      out[key] =
        driver === 'userspace'
          ? await pictureOfLayer(await sn.open(key))
          : await withTree(sn, key, work, async (tree) => pictureOfHost(tree.path('.')));
    }
    return out;
  } finally {
    await sn.close();
  }
}

describe.skipIf(!needs('root', 'overlay'))('kernel and userspace agree on one root', () => {
  let tmp: string;
  let work: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'strata-agree-'));
    work = join(tmp, 'work');
    mkdirSync(work);
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  for (const [made, read] of [
    ['overlay', 'userspace'],
    ['userspace', 'overlay'],
  ] as const) {
    it(`a chain changed through ${made === 'overlay' ? 'kernel mounts' : 'userspace views'} reads the same through ${read === 'overlay' ? 'kernel mounts' : 'userspace views'}`, async () => {
      const root = join(tmp, 'root');
      await build(root, work, made);
      const theirs = await pictures(root, work, made);
      const ours = await pictures(root, work, read);
      expect(ours).toEqual(theirs);
      expect(Object.keys((theirs as { active: object }).active).length).toBeGreaterThanOrEqual(8);
    });
  }
});
