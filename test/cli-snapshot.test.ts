/**
 * `strata snapshot …` and `strata fsck` as a user runs them (the built CLI): ctr's shape, JSON listings,
 * typed one-line errors, and the parser's own refusals (exit 2).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from './helpers/oracle.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

describe('strata snapshot', () => {
  let work: string;
  let root: string;
  const strata = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', root, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('build first: pnpm build');
    work = mkdtempSync(join(tmpdir(), 'strata-cli-sn-'));
    root = join(work, 'root');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('prepare, commit, view, ls, info, label, usage, mounts, diff, rm: the ctr workflow, with JSON where asked', () => {
    expect(strata('--driver', 'userspace', 'snapshot', 'prepare', 'a', '--label', 'team=x').status).toBe(0);
    expect(strata('snapshot', 'commit', 'base', 'a', '--label', 'gc=keep').status).toBe(0);
    expect(strata('snapshot', 'prepare', 'b', 'base').status).toBe(0);
    expect(strata('snapshot', 'view', 'v', 'base').status).toBe(0);
    const ls = strata('snapshot', 'ls');
    expect(ls.stdout.split('\n')[0]).toMatch(/^KEY\s+PARENT\s+KIND$/);
    const json = strata('snapshot', 'ls', '--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.map((o) => [o.key, o.kind, o.parent])).toEqual([
      ['b', 'active', 'base'],
      ['base', 'committed', null],
      ['v', 'view', 'base'],
    ]);
    expect(Object.keys(json[0]!)).toEqual(['key', 'kind', 'parent', 'labels', 'created', 'updated']);
    expect(strata('snapshot', 'ls', '--json', '--filter', 'kind==view', '--filter', 'labels.gc==keep').stdout.trim().split('\n').map((l) => JSON.parse(l).key)).toEqual(['base', 'v']);
    expect(JSON.parse(strata('snapshot', 'info', 'base', '--json').stdout)).toMatchObject({ key: 'base', kind: 'committed', labels: { gc: 'keep' } });
    expect(strata('snapshot', 'label', 'base', 'extra=1', 'gc=').stdout).toBe('extra=1\n');
    const usage = strata('snapshot', 'usage', 'base', '--json');
    expect(JSON.parse(usage.stdout)).toMatchObject({ key: 'base', size: expect.any(Number), inodes: expect.any(Number) });
    const mounts = strata('snapshot', 'mounts', '/mnt/target', 'b').stdout;
    expect(mounts).toMatch(/^mount -t overlay overlay \/mnt\/target -o .*upperdir=.*lowerdir=/);
    const layer = join(work, 'b.tar');
    const diff = strata('snapshot', 'diff', 'b', '-o', layer);
    expect(diff.status, diff.stderr).toBe(0);
    expect(diff.stdout).toMatch(/^diffID sha256:[0-9a-f]{64}\n/);
    const refused = strata('snapshot', 'rm', 'base');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^strata: FAILED_PRECONDITION: cannot remove snapshot "base": it has 2 child snapshot\(s\)/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(strata('snapshot', 'rm', 'b', 'v', 'base').status).toBe(0);
    expect(strata('snapshot', 'ls', '--json').stdout).toBe('');
  });

  it('fsck reports, repairs, and says so in its exit code', () => {
    mkdirSync(join(root, 'snapshots', '4242', 'fs'), { recursive: true });
    const found = strata('fsck', '--json');
    expect(found.status).toBe(1);
    expect(JSON.parse(found.stdout)).toMatchObject({ ok: false, problems: [{ kind: 'orphan-directory', repaired: false }] });
    expect(strata('fsck', '--repair').status).toBe(0);
    expect(strata('fsck').stdout).toMatch(/0 problem\(s\), 0 left/);
  });

  it('the parser refuses unknown flags and commands (exit 2), and every command has --help', () => {
    expect(strata('snapshot', 'ls', '--bogus').status).toBe(2);
    expect(strata('snapshot', 'frobnicate').status).toBe(2);
    expect(strata('snapshot', 'prepare').status).toBe(2);
    for (const command of [['snapshot', 'prepare'], ['snapshot', 'ls'], ['fsck'], ['apply']]) {
      const help = strata(...command, '--help');
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(`Usage: strata ${command.join(' ')}`);
    }
    expect(strata('--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const bad = strata('snapshot', 'prepare', 'a/b');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^strata: INVALID_ARGUMENT: /);
  });

  it("the command carries lmdb, with the binding lmdb's own loader picks, and that loader where it steps aside", async () => {
    // The command's database is the same either way: lmdb's loader (LIBC set) reads what the bundled path wrote.
    expect(strata('snapshot', 'prepare', 'loader-check').status).toBe(0);
    const viaLoader = spawnSync(process.execPath, [cli, '--root', root, 'snapshot', 'ls', '--json'], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '', LIBC: 'glibc' } });
    expect(viaLoader.status).toBe(0);
    expect(viaLoader.stdout).toBe(strata('snapshot', 'ls', '--json').stdout);
    expect(viaLoader.stdout).toContain('"loader-check"');
    expect(strata('snapshot', 'rm', 'loader-check').status).toBe(0);
    // On this machine (glibc Linux, no musl loader) the shortcut applies, and names the loader's own choice.
    const { prebuiltGlibcBinding } = (await import(join(cli, '..', 'lmdb-binding.js'))) as { prebuiltGlibcBinding: (dir: string) => string | undefined };
    const lmdbEntry = createRequire(join(cli, '..', '..', 'package.json')).resolve('lmdb');
    const lmdbDir = dirname(dirname(lmdbEntry));
    const loaderChoice = (createRequire(lmdbEntry)('node-gyp-build-optional-packages') as { path: (dir: string) => string }).path(lmdbDir);
    expect(loaderChoice).toMatch(/\.glibc\.node$/);
    expect(prebuiltGlibcBinding(lmdbDir)).toBe(loaderChoice);
  });

  it.skipIf(!needs('root', 'overlay'))('mount and unmount with the kernel under the overlay driver', () => {
    const kernelRoot = join(work, 'kernel');
    const k = (...args: string[]) => spawnSync(process.execPath, [cli, '--root', kernelRoot, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const target = join(work, 'mnt');
    mkdirSync(target);
    expect(k('--driver', 'overlay', 'snapshot', 'prepare', 'a').status).toBe(0);
    expect(k('snapshot', 'mount', 'a', target).status).toBe(0);
    writeFileSync(join(target, 'hello'), 'hi\n');
    expect(k('snapshot', 'unmount', target).status).toBe(0);
    expect(k('snapshot', 'commit', 'c', 'a').status).toBe(0);
    expect(k('snapshot', 'view', 'v', 'c').status).toBe(0);
    expect(k('snapshot', 'mount', 'v', target).status).toBe(0);
    try {
      expect(readFileSync(join(target, 'hello'), 'utf8')).toBe('hi\n');
      expect(() => writeFileSync(join(target, 'x'), 'y')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    } finally {
      k('snapshot', 'unmount', target);
    }
  });
});
