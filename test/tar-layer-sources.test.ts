/**
 * Layer tarballs as trees (TarLayer, and the commands that take `--lower`, `--from` and `--to` tarballs):
 * sparse files read in place in every form GNU tar writes them, and tarballs compressed by GNU gzip and
 * zstd's own tool read from an unnamed decompressed copy that nothing outlives, hostile ones refused with
 * typed errors.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, closeSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarLayer, type LayerTree } from '@strata/core';
import { needs } from './helpers/oracle.js';
import { rawTar } from './helpers/raw-tar.js';

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const strata = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/** Every path of a tree with what it is and holds: stat fields and, for files, the content. */
function picture(tree: LayerTree): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const visit = (dir: string) => {
    for (const [name, node] of tree.children(dir)) {
      if (node.kind !== 'entry') continue;
      const path = dir === '.' ? name : `${dir}/${name}`;
      const { type, mode, uid, gid, size, mtime, linkname, nlink } = tree.stat(path)!;
      out[path] = { type, mode, uid, gid, size, mtime, linkname, nlink, content: type === 'file' ? Buffer.from(tree.readAll(path)).toString('base64') : undefined };
      if (type === 'directory') visit(path);
    }
  };
  visit('.');
  return out;
}

/** Descriptors this process holds open. */
const openFds = () => readdirSync('/proc/self/fd').length;

describe.skipIf(!needs('root', 'gnu-tar', 'zstd'))('layer tarballs as trees', () => {
  let work: string;
  let spoolDir: string;
  /** The sparse file's bytes: data at the start, in the middle (not block-aligned) and at the end, holes between. */
  let sparseBytes: Buffer;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-tar-sources-'));
    spoolDir = join(work, 'spool');
    mkdirSync(spoolDir);
    const src = join(work, 'src');
    mkdirSync(join(src, 'd'), { recursive: true });
    const size = 6 * 1024 * 1024 + 100;
    const fd = openSync(join(src, 'd', 'sparse'), 'w');
    for (const [at, text] of [[0, 'head'], [3 * 1024 * 1024 + 3, 'middle'], [size - 4, 'tail']] as const) writeSync(fd, text, at);
    closeSync(fd);
    sparseBytes = readFileSync(join(src, 'd', 'sparse'));
    linkSync(join(src, 'd', 'sparse'), join(src, 'link'));
    writeFileSync(join(src, 'plain'), 'p'.repeat(70_000));
    execFileSync('ln', ['-s', 'd/sparse', join(src, 'sym')]);
    execFileSync('touch', ['-h', '-d', '2020-01-02 03:04:05', join(src, 'sym'), join(src, 'd'), src]);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const [form, flags] of [
    ['old GNU', ['--format=gnu']],
    ['PAX 0.0', ['--format=posix', '--sparse-version=0.0']],
    ['PAX 0.1', ['--format=posix', '--sparse-version=0.1']],
    ['PAX 1.0', ['--format=posix', '--sparse-version=1.0']],
  ] as const) {
    it(`reads sparse files in place (GNU tar -S, ${form}): holes as zeros, copied with their holes`, async () => {
      const tar = join(work, `sparse-${form.replace(/\W/g, '')}.tar`);
      execFileSync('tar', ['-C', join(work, 'src'), '-cS', ...flags, '-f', tar, '.']);
      const layer = await TarLayer.open(tar);
      expect(Buffer.from(layer.readAll('d/sparse')).equals(sparseBytes)).toBe(true);
      expect(Buffer.from(layer.readAll('link')).equals(sparseBytes)).toBe(true); // a hardlink reads its target
      expect(layer.stat('link')).toMatchObject({ nlink: 2, size: sparseBytes.length });
      const streamed: Buffer[] = [];
      for await (const chunk of layer.read('d/sparse')) streamed.push(Buffer.from(chunk));
      expect(Buffer.concat(streamed).equals(sparseBytes)).toBe(true);
      // Pieces across a hole's edge and past the end.
      const reader = layer.openContent('d/sparse');
      const piece = Buffer.alloc(10);
      const at = 3 * 1024 * 1024;
      expect(reader.read(piece, at)).toBe(10);
      expect(piece.equals(sparseBytes.subarray(at, at + 10))).toBe(true);
      expect(reader.read(piece, sparseBytes.length - 6)).toBe(6);
      expect(piece.subarray(0, 6).equals(sparseBytes.subarray(-6))).toBe(true);
      expect(reader.read(piece, sparseBytes.length)).toBe(0);
      reader.close();
      // Not one range of the tarball: nothing to splice; the plain file is.
      expect(layer.contentRange('d/sparse')).toBeUndefined();
      expect(layer.contentRange('plain')).toMatchObject({ path: tar, size: 70_000 });
      const copy = join(work, `copy-${form.replace(/\W/g, '')}`);
      layer.copyFileTo('d/sparse', copy);
      expect(readFileSync(copy).equals(sparseBytes)).toBe(true);
      expect(statSync(copy).blocks * 512).toBeLessThan(64 * 1024);
      // Its tree is the plain tarball's (GNU tar without -S), file for file.
      const plainTar = join(work, 'plain.tar');
      execFileSync('tar', ['-C', join(work, 'src'), '-c', ...flags, '-f', plainTar, '.']);
      expect(picture(layer)).toEqual(picture(await TarLayer.open(plainTar)));
    });
  }

  for (const [name, compress] of [
    ['gzip', (tar: string) => execFileSync('gzip', ['-c', tar], { maxBuffer: 1 << 30 })],
    ['zstd', (tar: string) => execFileSync('zstd', ['-q', '-c', tar], { maxBuffer: 1 << 30 })],
  ] as const) {
    it(`reads a ${name} tarball from an unnamed decompressed copy, gone once closed`, async () => {
      const tar = join(work, `src-${name}.tar`);
      execFileSync('tar', ['-C', join(work, 'src'), '-cS', '--format=posix', '-f', tar, '.']);
      const compressed = `${tar}.${name}`;
      writeFileSync(compressed, compress(tar));
      const fds = openFds();
      const layer = await TarLayer.open(compressed, { spoolDir });
      expect(readdirSync(spoolDir)).toEqual([]); // unnamed from the start
      expect(picture(layer)).toEqual(picture(await TarLayer.open(tar)));
      expect(layer.contentRange('plain')).toBeUndefined(); // no host path names the copy
      const copied = join(work, `copied-${name}`);
      layer.copyFileTo('plain', copied);
      expect(readFileSync(copied, 'utf8')).toBe('p'.repeat(70_000));
      expect(openFds()).toBe(fds + 1);
      layer.close();
      layer.close(); // twice is once
      expect(openFds()).toBe(fds);
      expect(() => layer.readAll('plain')).toThrow();
    });
  }

  it('refuses hostile and broken compressed tarballs with typed errors, leaving nothing behind', async () => {
    const gz = (name: string, bytes: Uint8Array) => {
      const path = join(work, name);
      writeFileSync(path, execFileSync('gzip', ['-c'], { input: bytes }));
      return path;
    };
    const escaping = gz('escape.tar.gz', rawTar([{ name: '../outside', data: 'x' }]));
    const whole = execFileSync('gzip', ['-c'], { input: rawTar([{ name: 'a', data: 'y'.repeat(100_000) }]) });
    const truncated = join(work, 'truncated.tar.gz');
    writeFileSync(truncated, whole.subarray(0, whole.length - 40));
    const xz = join(work, 'layer.tar.xz');
    writeFileSync(xz, execFileSync('xz', ['-c'], { input: rawTar([{ name: 'a', data: 'z' }]) }));
    const fds = openFds();
    await expect(TarLayer.open(escaping, { spoolDir })).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
    await expect(TarLayer.open(truncated, { spoolDir })).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
    await expect(TarLayer.open(xz, { spoolDir })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    // A compression bomb stops at what the limits let a tarball hold, not at a full disk.
    const bomb = join(work, 'bomb.tar.gz');
    writeFileSync(bomb, execFileSync('gzip', ['-c'], { input: rawTar([{ name: 'a', data: Buffer.alloc(8 * 1024 * 1024) }]) }));
    await expect(TarLayer.open(bomb, { spoolDir, maxTotalBytes: 1024 * 1024, maxEntries: 4, maxHeaderBytes: 4096 })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: expect.stringMatching(/decompressed, the tarball is over \d+ bytes/) });
    // A limit holds for the copy as for the tarball itself.
    await expect(TarLayer.open(gz('many.tar.gz', rawTar([{ name: 'a', data: '' }, { name: 'b', data: '' }])), { spoolDir, maxEntries: 1 })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(openFds()).toBe(fds);
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(existsSync(join(work, 'outside'))).toBe(false);
  });

  it('strata diff and ls take compressed and sparse tarballs where they take plain ones', () => {
    if (!existsSync(cli)) throw new Error('build first: pnpm build');
    const before = join(work, 'before');
    mkdirSync(join(before, 'd'), { recursive: true });
    writeFileSync(join(before, 'plain'), 'old');
    const tars = {
      before: join(work, 'before.tar'),
      after: join(work, 'after.tar'),
      beforeGz: join(work, 'before.tar.gz'),
      afterSparseZst: join(work, 'after-sparse.tar.zst'),
    };
    execFileSync('tar', ['-C', before, '-cf', tars.before, '.']);
    execFileSync('tar', ['-C', join(work, 'src'), '-cf', tars.after, '.']);
    writeFileSync(tars.beforeGz, execFileSync('gzip', ['-c', tars.before]));
    const sparse = join(work, 'after-sparse.tar');
    execFileSync('tar', ['-C', join(work, 'src'), '-cS', '-f', sparse, '.']);
    writeFileSync(tars.afterSparseZst, execFileSync('zstd', ['-q', '-c', sparse], { maxBuffer: 1 << 30 }));
    const plain = strata('diff', '--from', tars.before, '--to', tars.after, '-o', join(work, 'diff-plain.tar'));
    expect(plain.status, plain.stderr).toBe(0);
    const other = strata('diff', '--from', tars.beforeGz, '--to', tars.afterSparseZst, '-o', join(work, 'diff-other.tar'));
    expect(other.status, other.stderr).toBe(0);
    expect(other.stdout).toBe(plain.stdout); // the same diffID, digest and size
    expect(readFileSync(join(work, 'diff-other.tar')).equals(readFileSync(join(work, 'diff-plain.tar')))).toBe(true);
    const ls = (...lowers: string[]) => strata('ls', '--json', ...lowers.flatMap((l) => ['--lower', l]));
    const lsPlain = ls(tars.before, tars.after);
    expect(lsPlain.status, lsPlain.stderr).toBe(0);
    expect(lsPlain.stdout).toContain('"path":"d/sparse"');
    expect(ls(tars.beforeGz, tars.afterSparseZst).stdout).toBe(lsPlain.stdout);
    const broken = join(work, 'broken.tar.gz');
    writeFileSync(broken, readFileSync(tars.beforeGz).subarray(0, 30));
    const refused = ls(broken);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/^strata: LAYER_FORMAT: /);
  });
});
