/**
 * The merged view beyond the random suite: deep stacks, container-root symlinks, the CLI over an upper
 * written by the kernel, and copy-up rename of lower directories.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostLayer, MemoryLayer, MergedView, WritableLayer, type Entry } from '@strata/core';
import { mknod } from './helpers/host.js';
import { needs } from './helpers/oracle.js';
import { snapshotTree } from './helpers/snapshot.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const entry = (path: string, type: Entry['type'], extra: Partial<Entry> = {}): Entry => ({ path, type, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtime: { sec: 0, nsec: 0 }, xattrs: new Map(), ...extra });

describe.skipIf(!needs('root', 'overlay'))('merged view', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-merged-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('128 lowers: strata equals the kernel', () => {
    const lowers: string[] = [];
    for (let i = 0; i < 128; i++) {
      const dir = join(work, `${i}`); // short names: the mount option string has a page-size limit
      mkdirSync(join(dir, 'shared'), { recursive: true });
      writeFileSync(join(dir, 'shared', `f${i}`), `layer ${i}\n`);
      writeFileSync(join(dir, 'top'), `written by ${i}\n`);
      if (i % 10 === 9) mknod(join(dir, 'shared', `f${i - 1}`), 0o020000, 0, 0, 0); // whiteout of the layer below's file
      lowers.push(dir);
    }
    const mount = join(work, 'm');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...lowers].reverse().map((_, k) => `${127 - k}`).join(':')}`, mount], { cwd: work });
    try {
      const view = new MergedView(lowers.map((d) => new HostLayer(d)));
      const kernel = snapshotTree(mount, { ignoreMtime: true });
      const ours = [...view.walk()].map((n) => n.path).sort();
      expect(ours).toEqual([...kernel.keys()].sort());
      expect(view.readdir('shared')).toHaveLength(128 - 12);
      expect(view.stat('top')?.size).toBe('written by 127\n'.length);
    } finally {
      execFileSync('umount', [mount]);
    }
  });

  it('symlinks resolve inside the container root, absolute targets included', async () => {
    const lower = new MemoryLayer([
      { entry: entry('etc', 'directory') },
      { entry: entry('etc/passwd', 'file'), content: Buffer.from('root:x:0:0\n') },
      { entry: entry('abs', 'symlink', { linkname: '/etc' }) },
      { entry: entry('climb', 'symlink', { linkname: '../../../../etc/passwd' }) },
    ]);
    const upper = join(work, 'sym-upper');
    mkdirSync(upper);
    const layer = new WritableLayer([lower], upper);
    expect(await layer.readFile('/abs/passwd', 'utf8')).toBe('root:x:0:0\n');
    expect(await layer.readFile('climb', 'utf8')).toBe('root:x:0:0\n'); // .. stops at the container root
    await layer.writeFile('/abs/shadow', 'secret\n');
    expect(snapshotTree(upper).has('etc/shadow')).toBe(true);
  });

  it("renameDirectories: 'copy-up' moves a lower directory the way mv does", async () => {
    const lower = new MemoryLayer([{ entry: entry('d', 'directory') }, { entry: entry('d/a', 'file'), content: Buffer.from('a\n') }]);
    const upper = join(work, 'mv-upper');
    mkdirSync(upper);
    const layer = new WritableLayer([lower], upper, { renameDirectories: 'copy-up' });
    await layer.rename('/d', '/moved');
    expect(await layer.readdir('/')).toEqual(['moved']);
    expect(await layer.readFile('/moved/a', 'utf8')).toBe('a\n');
    const strict = new WritableLayer([lower], join(work, 'mv-upper2'));
    mkdirSync(join(work, 'mv-upper2'));
    await expect(strict.rename('/d', '/moved')).rejects.toMatchObject({ code: 'EXDEV' });
  });

  it('strata ls --lower/--upper reads an upper written by the kernel', () => {
    const [l1, l2, u, w, m] = ['l1', 'l2', 'u', 'w', 'm'].map((n) => join(work, `cli-${n}`)) as [string, string, string, string, string];
    for (const d of [l1, l2, u, w, m]) mkdirSync(d);
    writeFileSync(join(l1, 'a'), 'a');
    mkdirSync(join(l1, 'd'));
    writeFileSync(join(l1, 'd', 'c'), 'c');
    writeFileSync(join(l2, 'b'), 'b');
    symlinkSync('b', join(l2, 'link'));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${l2}:${l1},upperdir=${u},workdir=${w}`, m]);
    try {
      execFileSync('sh', ['-c', `rm ${m}/a && rm -r ${m}/d && mkdir ${m}/d && echo new > ${m}/d/n`]);
    } finally {
      execFileSync('umount', [m]);
    }
    const r = spawnSync(process.execPath, [cli, 'ls', '--json', '--lower', l1, '--lower', l2, '--upper', u], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const paths = r.stdout.trim().split('\n').map((l) => JSON.parse(l).path);
    expect(paths).toEqual(['b', 'd', 'd/n', 'link']);
    const sub = spawnSync(process.execPath, [cli, 'ls', '--lower', l1, '--lower', l2, '--upper', u, '/d'], { encoding: 'utf8' });
    expect(sub.stdout).toContain('d/n');
  });
});
