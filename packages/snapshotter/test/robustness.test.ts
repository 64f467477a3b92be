/**
 * The snapshotter under stress: processes killed at random points of prepare, commit and remove; two
 * processes changing one root at once; malformed input; a damaged root checked and repaired by fsck.
 * Worker processes run the built package (test/fixtures/worker.mjs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '@strata/core';
import { openSnapshotter, type FsckReport, type Snapshotter } from '../src/index.js';
import { needs } from '../../../test/helpers/oracle.js';

const WORKER = new URL('./fixtures/worker.mjs', import.meta.url).pathname;
const ENV = { ...process.env, NODE_EXTRA_CA_CERTS: '' };

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'strata-robust-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Problems fsck must never find after a crash: those mean the database and the disk disagree. */
const BROKEN = new Set(['missing-directory', 'missing-parent', 'parent-not-committed', 'children-index', 'invalid-upper', 'unknown-entry']);

function broken(report: FsckReport): string[] {
  return report.problems.filter((p) => BROKEN.has(p.kind)).map((p) => `${p.kind} ${p.key ?? p.path}: ${p.detail}`);
}

describe('crash safety', () => {
  it('a process killed at random points of prepare, commit and remove leaves a consistent root that cleanup makes clean', async () => {
    const root = join(work, 'crash');
    const runs = Number(process.env.STRATA_CRASH_RUNS ?? 200);
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let commits = 0;
    for (let i = 0; i < runs; i++) {
      const child = spawn(process.execPath, [WORKER, root, `w${i % 7}`, '30', String(i + 1)], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve) => {
        const check = () => (out.includes('"ready"') ? resolve() : setTimeout(check, 2));
        check();
      });
      await new Promise((resolve) => setTimeout(resolve, random() * 60));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      commits += (out.match(/"committed"/g) ?? []).length;
      expect(out).not.toContain('untyped');

      const sn = await openSnapshotter(root);
      try {
        expect(broken(await sn.fsck()), `after kill ${i}`).toEqual([]);
        await sn.cleanup();
        const after = await sn.fsck();
        expect(after.problems, `after cleanup ${i}`).toEqual([]);
        // Every committed snapshot still reads: its own file is there.
        if (i % 25 === 0) {
          await sn.walk(async (info) => {
            if (info.kind !== 'committed') return;
            const tree = await sn.open(info.name);
            expect(String(await tree.readFile(`/${info.name.replace(/-c(\d+)$/, '-a$1')}`))).toBe(info.name.replace(/-c(\d+)$/, '-a$1'));
          });
        }
      } finally {
        await sn.close();
      }
    }
    expect(commits).toBeGreaterThan(runs / 4); // the kills landed among real work
  }, 600_000);
});

describe('two processes', () => {
  it('hammering one root: no corruption, no lost snapshot, every failure typed', async () => {
    const root = join(work, 'two');
    const seconds = Number(process.env.STRATA_HAMMER_SECONDS ?? 6);
    const run = (prefix: string, seed: number) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [WORKER, root, prefix, String(seconds), String(seed)], { env: ENV, stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`worker ${prefix} exited ${code}: ${out.slice(-2000)}`))));
      });
    const outputs = await Promise.all([run('p', 1), run('q', 2)]);
    const sn = await openSnapshotter(root);
    try {
      let ops = 0;
      for (const out of outputs) {
        const events = out.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
        const done = events.at(-1)!.done as { ok: number; errors: Record<string, number> };
        ops += done.ok;
        for (const code of Object.keys(done.errors)) expect(['NOT_FOUND', 'FAILED_PRECONDITION', 'ALREADY_EXISTS'], `error ${code}`).toContain(code);
        // Whatever a worker committed and did not remove is still there, and reads.
        const live = new Set<string>();
        for (const e of events) {
          if (typeof e.committed === 'string') live.add(e.committed);
          if (typeof e.removed === 'string') live.delete(e.removed);
        }
        for (const name of live) {
          expect((await sn.stat(name)).kind).toBe('committed');
          const key = name.replace(/-c(\d+)$/, '-a$1');
          expect(String(await (await sn.open(name)).readFile(`/${key}`))).toBe(key);
        }
      }
      expect(ops).toBeGreaterThan(50);
      const report = await sn.fsck();
      expect(report.problems).toEqual([]);
    } finally {
      await sn.close();
    }
  }, 120_000);
});

describe('bad input', () => {
  let sn: Snapshotter;
  beforeAll(async () => {
    sn = await openSnapshotter(join(work, 'bad'), { driver: 'userspace' });
    await sn.prepare('base-a');
    await sn.commit('base', 'base-a');
  });
  afterAll(() => sn.close());

  const keys: Array<[string, string]> = [
    ['a slash', 'a/b'],
    ['dot-dot', '..'],
    ['dot', '.'],
    ['a NUL', 'a\0b'],
    ['a newline', 'a\nb'],
    ['an escape', 'a\x1b[31m'],
    ['empty', ''],
    ['over 255 bytes', 'k'.repeat(256)],
    ['a lone surrogate', 'a\ud800'],
  ];
  for (const [what, key] of keys) {
    it(`a key with ${what} is INVALID_ARGUMENT, for every call`, async () => {
      const calls = [() => sn.prepare(key), () => sn.view(key), () => sn.stat(key), () => sn.remove(key), () => sn.commit(key, 'base'), () => sn.usage(key)];
      if (key !== '') calls.push(() => sn.prepare('ok', key)); // an empty parent means none, as in containerd
      for (const call of calls) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isStrataError(error), String(error)).toBe(true);
        expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
    });
  }

  it('labels over containerd’s size limit, empty label keys and non-string values are INVALID_ARGUMENT', async () => {
    await expect(sn.prepare('l1', 'base', { labels: { k: 'v'.repeat(4096) } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(sn.prepare('l2', 'base', { labels: { '': 'v' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(sn.prepare('l3', 'base', { labels: { k: 1 as unknown as string } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await sn.prepare('l4', 'base', { labels: { k: 'v'.repeat(4095) } });
    await expect(sn.update({ name: 'l4', labels: { big: 'x'.repeat(5000) } }, ['labels.big'])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a parent that is active or a view is INVALID_ARGUMENT; a missing one NOT_FOUND', async () => {
    await sn.prepare('active-parent', 'base');
    await sn.view('view-parent', 'base');
    await expect(sn.prepare('child', 'active-parent')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(sn.prepare('child', 'view-parent')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(sn.prepare('child', 'nowhere')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(sn.commit('x', 'view-parent')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(sn.commit('base', 'active-parent')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(sn.mounts('base')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(readdirSync(join(work, 'bad', 'snapshots')).filter((n) => n.startsWith('new-'))).toEqual([]); // nothing staged is left
  });

  it('an unknown driver is INVALID_ARGUMENT; a native root refuses the layered drivers', async () => {
    await expect(openSnapshotter(join(work, 'd1'), { driver: 'zfs' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const native = await openSnapshotter(join(work, 'd2'), { driver: 'native' });
    await native.close();
    await expect(openSnapshotter(join(work, 'd2'), { driver: 'userspace' })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it.skipIf(!needs('root'))('a root on a file system without extended attributes refuses the layered drivers (UNSUPPORTED), and takes native', async () => {
    const mnt = join(work, 'ramfs');
    mkdirSync(mnt);
    spawnSync('mount', ['-t', 'ramfs', 'ramfs', mnt]);
    try {
      await expect(openSnapshotter(join(mnt, 'root'), { driver: 'userspace' })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
      rmSync(join(mnt, 'root'), { recursive: true, force: true });
      const native = await openSnapshotter(join(mnt, 'root'), { driver: 'native' });
      await native.prepare('a');
      await native.close();
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('without the kernel overlay (a process without privileges), asking for the overlay driver is UNSUPPORTED', async () => {
    const root = join(work, 'no-overlay');
    if (process.getuid?.() !== 0) {
      await expect(openSnapshotter(root, { driver: 'overlay' })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
      return;
    }
    // As root, the same from a child that gives up root first (nobody), over a root it may write to.
    mkdirSync(root, { mode: 0o777 });
    spawnSync('chmod', ['777', root, work]);
    const script = `process.setgid(65534); process.setuid(65534);
      const { openSnapshotter } = await import(${JSON.stringify(new URL('../dist/strata-snapshotter.js', import.meta.url).pathname)});
      const e = await openSnapshotter(${JSON.stringify(join(root, 'r'))}, { driver: 'overlay' }).then(() => 'opened', (e) => e.code);
      const fallback = await openSnapshotter(${JSON.stringify(join(root, 'r2'))});
      process.stdout.write(JSON.stringify({ overlay: e, picked: fallback.driver }));
      await fallback.close();`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: ENV, cwd: '/' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ overlay: 'UNSUPPORTED', picked: 'userspace' });
  });
});

describe('keys as image unpacking names them', () => {
  it('chainID-shaped names (sha256:…) as parents: children are counted, remove refuses, fsck is clean', async () => {
    const sn = await openSnapshotter(join(work, 'chain-keys'), { driver: 'userspace' });
    try {
      const names = ['sha256:127c6a072f0adc5e0c80e18d93ccf0ded8f18288e2af7566c4a1b4207d2d8d29', 'sha256:0', 'sha256:1:2', 'extract-1 sha256:ab', 'a b c', 'ü-ß-日本'];
      let parent: string | undefined;
      for (const [i, name] of names.entries()) {
        await sn.prepare(`tmp-${i}`, parent);
        await sn.commit(name, `tmp-${i}`);
        parent = name;
      }
      await sn.prepare('top', parent);
      for (const name of names) await expect(sn.remove(name)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      expect((await sn.fsck()).problems).toEqual([]);
      await sn.remove('top');
      for (const name of [...names].reverse()) await sn.remove(name);
      expect((await sn.fsck()).problems).toEqual([]);
    } finally {
      await sn.close();
    }
  });
});

describe('fsck', () => {
  it('finds what a damaged root holds and repairs what it safely can', async () => {
    const root = join(work, 'fsck');
    const sn = await openSnapshotter(root, { driver: 'userspace' });
    try {
      await sn.prepare('a');
      await sn.commit('base', 'a');
      await sn.prepare('child', 'base');
      await sn.prepare('lonely');
      await sn.prepare('broken-upper', 'base');
      expect((await sn.fsck()).problems).toEqual([]);
      const snapshots = join(root, 'snapshots');
      const idOf = async (key: string) => {
        const mounts = await sn.mounts(key);
        const source = mounts[0]!.type === 'bind' ? mounts[0]!.source : mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
        return source.split('/').at(-2)!;
      };
      // A record without its directory, an orphan directory, leftovers of a dead process, an upper a redirect_dir mount wrote.
      rmSync(join(snapshots, await idOf('lonely')), { recursive: true });
      mkdirSync(join(snapshots, '999', 'fs'), { recursive: true });
      mkdirSync(join(snapshots, 'new-999999-abcdef'));
      mkdirSync(join(snapshots, 'rm-77'));
      const upper = join(snapshots, await idOf('broken-upper'), 'fs');
      mkdirSync(join(upper, 'moved'));
      const { setXattr } = await import('@strata/core');
      setXattr(join(upper, 'moved'), `${process.geteuid?.() === 0 ? 'trusted' : 'user'}.overlay.redirect`, Buffer.from('/elsewhere'));
      const report = await sn.fsck();
      expect(report.ok).toBe(false);
      expect(report.problems.map((p) => p.kind).sort()).toEqual(['invalid-upper', 'missing-directory', 'orphan-directory', 'stale-staging', 'unfinished-removal']);
      const repaired = await sn.fsck({ repair: true });
      expect(repaired.problems.filter((p) => !p.repaired).map((p) => p.kind)).toEqual(['invalid-upper']);
      await expect(sn.stat('lonely')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(existsSync(join(snapshots, '999'))).toBe(false);
      expect((await sn.fsck()).problems.map((p) => p.kind)).toEqual(['invalid-upper']);
      await sn.remove('broken-upper');
      expect((await sn.fsck()).problems).toEqual([]);
      renameSync(join(snapshots, await idOf('child')), join(work, 'stolen'));
      const withChildren = await sn.fsck({ repair: true });
      expect(withChildren.problems.map((p) => [p.kind, p.repaired])).toEqual([['missing-directory', true]]);
      writeFileSync(join(snapshots, 'stray-file'), 'x');
      expect((await sn.fsck({ repair: true })).problems.map((p) => [p.kind, p.repaired])).toEqual([['unknown-entry', false]]);
    } finally {
      await sn.close();
    }
  });
});
