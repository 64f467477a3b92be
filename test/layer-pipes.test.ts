/**
 * Layers read from pipes, as `tar -f` reads them: a path that names a pipe (`<(…)`, /dev/stdin, a FIFO) is
 * read in order, and the command's `-` reads stdin by its path when it is a pipe or a file not yet read
 * from. Each form must give what the layer file gives; what needs a second read (flatten) is refused.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLayer, digestLayer, flatten, readLayer, TarLayer } from '@strata/core';
import { picture } from './helpers/unpacked.js';
import { rawTar } from './helpers/raw-tar.js';

const work = mkdtempSync(join(tmpdir(), 'strata-pipes-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');

/** A layer over 1 MiB (so a pipe fills a read buffer many times), with a directory, files and a link. */
const layer = rawTar([
  { name: 'etc/', type: '5', mode: 0o755, mtime: 1_700_000_000 },
  { name: 'etc/big', data: Buffer.alloc(3 * 1024 * 1024 + 5, 7), mode: 0o644, mtime: 1_700_000_000 },
  { name: 'etc/small', data: 'small\n', mode: 0o600, mtime: 1_700_000_000 },
  { name: 'etc/link', type: '2', linkname: 'small', mtime: 1_700_000_000 },
]);
const layerFile = join(work, 'layer.tar');
writeFileSync(layerFile, layer);
const gzipFile = join(work, 'layer.tar.gz');
writeFileSync(gzipFile, gzipSync(layer));

let fifos = 0;
/** A FIFO that a child process fills with `file`, and that child's end. */
function fifoOf(file: string): { path: string; done: Promise<void>; stop: () => void } {
  const path = join(work, `fifo-${fifos++}`);
  execFileSync('mkfifo', [path]);
  const writer = spawn('sh', ['-c', 'exec cat "$0" > "$1"', file, path], { stdio: 'ignore' });
  const done = new Promise<void>((resolve) => writer.on('close', () => resolve()));
  return { path, done, stop: () => writer.kill() };
}

describe('layers read from pipes', () => {
  it('digests and applies a layer from a FIFO as from its file, plain and gzip', async () => {
    for (const file of [layerFile, gzipFile]) {
      const fifo = fifoOf(file);
      expect(await digestLayer(fifo.path)).toEqual(await digestLayer(file));
      await fifo.done;
    }
    const [fromFile, fromFifo] = [join(work, 'apply-file'), join(work, 'apply-fifo')];
    mkdirSync(fromFile);
    mkdirSync(fromFifo);
    const fifo = fifoOf(gzipFile);
    const applied = await applyLayer(fifo.path, fromFifo);
    expect(applied).toEqual(await applyLayer(gzipFile, fromFile));
    expect(picture(fromFifo)).toEqual(picture(fromFile));
    await fifo.done;
  });

  it('reads a FIFO as a tree (copied first, as a compressed layer is) and lists it', async () => {
    const fifo = fifoOf(layerFile);
    const [fromFifo, fromFile] = await Promise.all([TarLayer.open(fifo.path), TarLayer.open(layerFile)]);
    try {
      expect(fromFifo.contentRange('etc/big')).toBeUndefined();
      const chunks: Buffer[] = [];
      for await (const chunk of fromFifo.read('etc/big')) chunks.push(Buffer.from(chunk));
      const big = Buffer.concat(chunks);
      expect(big.equals(Buffer.alloc(3 * 1024 * 1024 + 5, 7))).toBe(true);
      expect(fromFifo.readlink('etc/link')).toBe('small');
      expect(fromFifo.stat('etc/small')).toEqual(fromFile.stat('etc/small'));
    } finally {
      fromFifo.close();
    }
    const listed = fifoOf(layerFile);
    const names: string[] = [];
    for await (const { entry } of readLayer(listed.path)) names.push(entry.path);
    expect(names).toEqual(['etc', 'etc/big', 'etc/small', 'etc/link']);
  });

  it('refuses to flatten a FIFO, which can be read once, and reads nothing of it', async () => {
    const fifo = fifoOf(layerFile);
    try {
      await expect(flatten([fifo.path], join(work, 'flat.tar'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('not a file') });
    } finally {
      fifo.stop();
    }
  });

  it("the command's - reads stdin by its path when it is a pipe, or a file from where it stands", () => {
    const expected = spawnSync(process.execPath, [cli, 'digest', layerFile], { encoding: 'utf8' });
    expect(expected.status, expected.stderr).toBe(0);
    // A pipe, as `-` and as /dev/stdin; and a socket (what Node gives a child for input), as `-`.
    for (const name of ['-', '/dev/stdin']) {
      const piped = spawnSync('sh', ['-c', 'cat "$2" | exec "$0" "$1" digest "$3"', process.execPath, cli, layerFile, name], { encoding: 'utf8' });
      expect(piped.status, piped.stderr).toBe(0);
      expect(piped.stdout).toBe(expected.stdout);
    }
    const socket = spawnSync(process.execPath, [cli, 'digest', '-'], { input: layer, encoding: 'utf8' });
    expect(socket.status, socket.stderr).toBe(0);
    expect(socket.stdout).toBe(expected.stdout);
    // A file: from its start, and from past a prefix the caller has read (tar's `-f -` reads from there).
    const prefixed = join(work, 'prefixed');
    writeFileSync(prefixed, Buffer.concat([Buffer.alloc(512, 'x'), layer]));
    for (const [file, skip] of [
      [layerFile, 0],
      [prefixed, 512],
    ] as const) {
      const fd = openSync(file, 'r');
      try {
        if (skip > 0) readSync(fd, Buffer.alloc(skip), 0, skip, null);
        const redirected = spawnSync(process.execPath, [cli, 'digest', '-'], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
        expect(redirected.status, redirected.stderr).toBe(0);
        expect(redirected.stdout).toBe(expected.stdout);
      } finally {
        closeSync(fd);
      }
    }
    // Applied from a pipe, the tree the file gives.
    const [fromFile, fromPipe] = [join(work, 'cli-file'), join(work, 'cli-pipe')];
    mkdirSync(fromFile);
    mkdirSync(fromPipe);
    expect(spawnSync(process.execPath, [cli, 'apply', gzipFile, fromFile]).status).toBe(0);
    const applied = spawnSync('sh', ['-c', 'cat "$2" | exec "$0" "$1" apply - "$3"', process.execPath, cli, gzipFile, fromPipe], { encoding: 'utf8' });
    expect(applied.status, applied.stderr).toBe(0);
    expect(picture(fromPipe)).toEqual(picture(fromFile));
  });

  it('the command takes process substitution as a layer, a lower and a tree to diff from', () => {
    const sh = (script: string) => spawnSync('bash', ['-c', script, process.execPath, cli, layerFile, gzipFile, work], { encoding: 'utf8' });
    const digest = sh('exec "$0" "$1" digest <(cat "$3")');
    expect(digest.status, digest.stderr).toBe(0);
    expect(digest.stdout).toContain('compression gzip');
    const listed = sh('exec "$0" "$1" ls --lower <(cat "$2")');
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/etc\/link -> small/);
    const diffed = sh('exec "$0" "$1" diff --from <(cat "$3") --to <(cat "$2") -o "$4/diff.tar"');
    expect(diffed.status, diffed.stderr).toBe(0);
    expect(diffed.stdout).toMatch(/^diffID sha256:/);
    const flat = sh('exec "$0" "$1" flatten <(cat "$2") -o "$4/flat.tar"');
    expect(flat.status).toBe(1);
    expect(flat.stderr).toContain('a pipe can be read once');
  });
});
