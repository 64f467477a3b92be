/**
 * Apply's edges, found by fuzzing and by trying real layers, one named test each: what the host refuses,
 * what no host can hold, numbers that would wrap, entries a later entry replaces, decompression bombs,
 * text a layer controls in messages, and hardlink chains. Each ends in a typed error or a warning, never an
 * errno from deep inside, a wrapped number, or memory that grows with the layer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLayer, digestLayer, HostLayer, readLayer } from '@strata/core';
import { compressor } from '../packages/core/src/blob/compression.js';
import { needs } from './helpers/oracle.js';
import { rawHeader, rawTar, type RawEntry } from './helpers/raw-tar.js';
import { getXattr } from './helpers/host.js';

const file = (name: string, data = 'x\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });
const work = mkdtempSync(join(tmpdir(), 'strata-edges-'));
afterAll(() => execFileSync('rm', ['-rf', work])); // rm works by descriptors: some paths here are over PATH_MAX
let n = 0;
const fresh = () => join(work, `t${++n}`);
const layerFile = (bytes: Uint8Array) => {
  const path = join(work, `l${++n}.tar`);
  writeFileSync(path, bytes);
  return path;
};
/** Writes `value` base-256 into the 8- or 12-byte numeric field at `offset`. */
const base256 = (offset: number, length: number, value: bigint) => (h: Buffer) => {
  let v = value;
  for (let i = length - 1; i > 0; i--) {
    h[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  h[offset] = 0x80;
};

describe('apply edges', () => {
  describe('xattrs the file system refuses are warnings, and the apply goes on', () => {
    const cases: Array<[string, RawEntry]> = [
      ['user.* on a symlink', { name: 'link', type: '2', linkname: 'f', pax: { 'SCHILY.xattr.user.note': 'x' } }],
      ['an unknown namespace', file('f2', 'x', { pax: { 'SCHILY.xattr.strata-unknown.key': 'x' } })],
      ['an invalid security.capability', file('f3', 'x', { pax: { 'SCHILY.xattr.security.capability': Buffer.from([1, 2, 3]) } })],
      ['a 60 KB value, under strata’s 64 KiB limit but over the file system’s', file('f4', 'x', { pax: { 'SCHILY.xattr.user.big': Buffer.alloc(60_000, 0x61) } })],
    ];
    for (const [what, entry] of cases) {
      it(what, async () => {
        const warnings: string[] = [];
        const target = fresh();
        await applyLayer(layerFile(rawTar([file('f'), entry, file('after')])), target, { onWarning: (m, p) => warnings.push(`${p}: ${m}`) });
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/not set: the file system refused it \(E[A-Z0-9]+\)/);
        expect(readFileSync(join(target, 'after'), 'utf8')).toBe('x\n');
      });
    }

    it('an xattr the file system takes is set, next to one it refuses', async () => {
      const target = fresh();
      await applyLayer(layerFile(rawTar([file('f', 'x', { pax: { 'SCHILY.xattr.user.ok': 'yes', 'SCHILY.xattr.strata-unknown.k': 'x' } })])), target, { onWarning: () => {} });
      expect(Buffer.from(getXattr(join(target, 'f'), 'user.ok')!).toString()).toBe('yes');
    });
  });

  it('a name over 255 bytes is LIMIT_EXCEEDED, naming the path', async () => {
    const name = `d/${'n'.repeat(256)}`;
    await expect(applyLayer(layerFile(rawTar([file('ok'), file('x', 'y', { pax: { path: name } })])), fresh())).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', path: name });
  });

  it('a path longer than the host allows under a long target path is written (every call is relative to a directory descriptor)', async () => {
    const deep = Array.from({ length: 16 }, (_, i) => `${i}`.padStart(240, 'd')).join('/'); // ~3.9 KB
    const base = join(work, 'p'.repeat(200), 'q'.repeat(200));
    mkdirSync(base, { recursive: true });
    const target = join(base, 'target');
    expect(target.length + deep.length).toBeGreaterThan(4096);
    await applyLayer(layerFile(rawTar([file('x', 'deep\n', { pax: { path: `${deep}/f` } })])), target);
    // Too long for one path: read it relative to the target, as the apply wrote it.
    expect(execFileSync('cat', [`${deep}/f`], { cwd: target, encoding: 'utf8' })).toBe('deep\n');
  });

  it('a path over 4096 bytes is LIMIT_EXCEEDED', async () => {
    const path = `${'p/'.repeat(2049)}f`;
    await expect(applyLayer(layerFile(rawTar([file('x', 'y', { pax: { path } })])), fresh())).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });

  for (const [what, entry] of [
    ['a PAX uid of 2^32 + 1000 (would wrap to 1000)', file('f', 'x', { pax: { uid: String(2 ** 32 + 1000) } })],
    ['a PAX gid of 2^32 (would wrap to root)', file('f', 'x', { pax: { gid: String(2 ** 32) } })],
    ['a base-256 uid of 2^40 (would wrap to root)', file('f', 'x', { patch: base256(108, 8, 1n << 40n) })],
    ['a PAX uid beyond any integer', file('f', 'x', { pax: { uid: '99999999999999999999999' } })],
    ['a device major of 4096', { name: 'dev', type: '3', pax: { 'SCHILY.devmajor': '4096' } } as RawEntry],
    ['a base-256 device major of 2^40', { name: 'dev', type: '3', patch: base256(329, 8, 1n << 40n) } as RawEntry],
    ['a device minor of 2^20', { name: 'dev', type: '4', pax: { 'SCHILY.devminor': String(2 ** 20) } } as RawEntry],
  ] as const) {
    it(`${what} is LAYER_FORMAT`, async () => {
      const target = fresh();
      await expect(applyLayer(layerFile(rawTar([entry])), target)).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
      expect(() => statSync(target)).toThrow();
    });
  }

  it('lists the directories it made only as parents: not one an entry named, before or after its children, nor one a file replaced', async () => {
    const target = fresh();
    const dir = (name: string): RawEntry => ({ name, type: '5', mode: 0o755 });
    const layer = rawTar([file('a/b/c/x'), dir('a/b/'), file('e/f/y'), file('g/z'), dir('h/'), file('h/i/w'), file('g', 'now a file\n')]);
    const { impliedDirectories } = await applyLayer(layerFile(layer), target, { listImpliedDirectories: true });
    expect(impliedDirectories?.sort()).toEqual(['a', 'a/b/c', 'e', 'e/f', 'h/i']);
    expect((await applyLayer(layerFile(layer), fresh())).impliedDirectories).toBeUndefined();
  });

  it('a directory replaced by a file in the same layer: the file wins, its children and their pending work go', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'd/', type: '5', mode: 0o700 }, file('d/x'), file('d', 'now a file\n')])), target);
    expect(readFileSync(join(target, 'd'), 'utf8')).toBe('now a file\n');
  });

  it('a hardlink whose parent is replaced by a file in the same layer is dropped with it', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'd/', type: '5' }, { name: 'd/h', type: '1', linkname: 't' }, file('d', 'file\n'), file('t', 'target\n')])), target);
    expect(readFileSync(join(target, 'd'), 'utf8')).toBe('file\n');
    expect(readFileSync(join(target, 't'), 'utf8')).toBe('target\n');
  });

  it('a later entry at a hardlink’s path wins over the hardlink linked at the end', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'h', type: '1', linkname: 't' }, file('h', 'mine\n'), file('t', 'target\n')])), target);
    expect(readFileSync(join(target, 'h'), 'utf8')).toBe('mine\n');
    expect(lstatSync(join(target, 'h')).nlink).toBe(1);
  });

  it('a chain of hardlinks a -> b -> c with c last is linked', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'a', type: '1', linkname: 'b' }, { name: 'b', type: '1', linkname: 'c' }, file('c', 'shared\n')])), target);
    for (const name of ['a', 'b', 'c']) expect(readFileSync(join(target, name), 'utf8')).toBe('shared\n');
    expect(lstatSync(join(target, 'c')).nlink).toBe(3);
  });

  it('a hardlink whose target path runs through a symlink loop the same layer undoes is linked at the end', async () => {
    // Found by the diff round trips: below, d -> a; the layer turns a into a loop (a -> a) before its
    // hardlink b -> d/b, then makes d a directory holding b's target.
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'a/', type: '5' }, { name: 'd', type: '2', linkname: 'a' }])), target);
    const layer = rawTar([{ name: 'a', type: '2', linkname: 'a' }, { name: 'b', type: '1', linkname: 'd/b' }, { name: 'd/', type: '5' }, file('d/b', 'shared\n')]);
    await applyLayer(layerFile(layer), target);
    expect(readFileSync(join(target, 'b'), 'utf8')).toBe('shared\n');
    expect(statSync(join(target, 'b')).ino).toBe(statSync(join(target, 'd/b')).ino);
    // A loop still there at the end is UNSAFE_PATH, as it is for any entry.
    const looping = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'd', type: '2', linkname: 'd' }])), looping);
    await expect(applyLayer(layerFile(rawTar([{ name: 'b', type: '1', linkname: 'd/b' }])), looping)).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('a cycle of hardlinks is LAYER_FORMAT', async () => {
    await expect(applyLayer(layerFile(rawTar([{ name: 'a', type: '1', linkname: 'b' }, { name: 'b', type: '1', linkname: 'a' }])), fresh())).rejects.toMatchObject({ code: 'LAYER_FORMAT' });
  });

  it('an unknown type flag holding a newline or an escape is quoted in the message, on one line', async () => {
    for (const flag of ['\n', '\x1b']) {
      const error = await applyLayer(layerFile(rawTar([{ name: 'x', type: flag }])), fresh()).catch((e: Error) => e);
      expect(error).toMatchObject({ code: 'UNSUPPORTED' });
      expect((error as Error).message).not.toMatch(/[\x00-\x1f\x7f]/);
    }
    const layer = layerFile(rawTar([{ name: 'evil\nname\x1b[31m', type: '1', linkname: 'missing' }]));
    const cli = spawnSync(process.execPath, ['packages/cli/bin/strata.cjs', 'apply', layer, fresh()], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
    expect(cli.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(cli.stderr).not.toMatch(/\x1b/);
  });

  it('a symlink that replaced a directory keeps its own target (the directory’s mode is not applied through it)', async () => {
    const target = fresh();
    await applyLayer(layerFile(rawTar([{ name: 'd/', type: '5', mode: 0o4755 }, { name: 'd', type: '2', linkname: 'f' }, file('f')])), target);
    expect(readlinkSync(join(target, 'd'))).toBe('f');
    expect(statSync(join(target, 'f')).mode & 0o7777).toBe(0o644);
  });
});

/** A layer holding one file of `size` zero bytes, compressed: a decompression bomb of ratio ~1000 or more. */
async function bomb(path: string, compression: 'gzip' | 'zstd', size: number): Promise<void> {
  async function* tar(): AsyncGenerator<Uint8Array> {
    yield rawHeader({ name: 'zeros' }, size);
    const zeros = Buffer.alloc(1024 * 1024);
    for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    yield Buffer.alloc(((512 - (size % 512)) % 512) + 1024);
  }
  const transform = compression === 'gzip' ? createGzip({ level: 9 }) : compressor('zstd', 19)!;
  await pipeline(Readable.from(tar()), transform, createWriteStream(path));
}

describe('in a worker thread', () => {
  it('an apply closes the descriptors it opened without Node warning about each one', () => {
    // Node tracks the descriptors a worker's fs opens and warns on stderr for every other one fs closes: the
    // target's directories and streamed files are opened by strata's addon, so the addon closes them too.
    const layer = layerFile(rawTar([{ name: 'd/', type: '5' }, file('d/small'), file('d/large', 'y'.repeat(3 << 20)), file('e/f')]));
    const target = fresh();
    const core = new URL('../packages/core/dist/strata-core.js', import.meta.url).href;
    const worker = `import(${JSON.stringify(core)}).then((core) => core.applyLayer(${JSON.stringify(layer)}, ${JSON.stringify(target)})).then((r) => require('node:worker_threads').parentPort.postMessage(r.diffID))`;
    const main = `const { Worker } = require('node:worker_threads'); new Worker(${JSON.stringify(worker)}, { eval: true }).on('message', (m) => console.log(m)).on('error', (e) => { console.error(e); process.exitCode = 1; });`;
    const run = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8' });
    expect(run.stderr).not.toMatch(/closed but not opened/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(statSync(join(target, 'd', 'large')).size).toBe(3 << 20);
    expect(readFileSync(join(target, 'e', 'f'), 'utf8')).toBe('x\n');
  });
});

describe('decompression bombs', () => {
  for (const compression of ['zstd', 'gzip'] as const) {
    it(`a ${compression} layer that inflates to 1 GiB is digested and listed in flat memory`, async () => {
      const path = join(work, `bomb.${compression}`);
      await bomb(path, compression, 1024 ** 3);
      expect(statSync(path).size).toBeLessThan(2 * 1024 * 1024);
      // In a process of its own, so its peak RSS is the reading's alone.
      const script = `import { digestLayer, readLayer } from '@strata/core';
const d = await digestLayer(process.argv[1]);
let count = 0; for await (const { body } of readLayer(process.argv[1])) { for await (const _ of body) count++; }
// VmHWM, not getrusage's maxRSS: after fork and exec, the latter still counts the parent's (the test worker's) memory.
const hwm = Number(/VmHWM:\\s+(\\d+)/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8'))[1]);
process.stdout.write(JSON.stringify({ size: d.uncompressedSize, chunks: count, maxRssMiB: hwm / 1024 }));`;
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
      expect(run.stderr).toBe('');
      const result = JSON.parse(run.stdout) as { size: number; maxRssMiB: number };
      expect(result.size).toBeGreaterThan(1024 ** 3);
      expect(result.maxRssMiB).toBeLessThan(200);
    });
  }

  it('a bomb over maxTotalBytes stops early with LIMIT_EXCEEDED', async () => {
    const path = join(work, 'bomb-limit.zst');
    await bomb(path, 'zstd', 256 * 1024 * 1024);
    await expect(digestLayer(path, { maxTotalBytes: 1024 * 1024 })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    const reader = readLayer(path, { maxTotalBytes: 1024 * 1024 });
    await expect((async () => {
      for await (const _ of reader) {
        // refused at the header
      }
    })()).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });
});

describe.skipIf(!needs('root', 'overlay'))('parents a layer implies, in overlay layout', () => {
  it('are copied up from the lowers (mode, owner, xattrs, times), so the kernel’s merged view matches a plain apply', async () => {
    const lower = fresh();
    const stamp = 1_600_000_000;
    await applyLayer(
      layerFile(
        rawTar([
          { name: 'tmp/', type: '5', mode: 0o1777, mtime: stamp },
          { name: 'srv/', type: '5', mode: 0o750, uid: 1234, gid: 99, mtime: stamp, pax: { 'SCHILY.xattr.user.kept': 'yes' } },
          { name: 'srv/deep/', type: '5', mode: 0o711, mtime: stamp },
        ]),
      ),
      lower,
    );
    // The next layer names files below those directories, not the directories: what umoci repack and others write.
    const next = layerFile(rawTar([file('tmp/scratch'), file('srv/deep/data'), file('new/dir/file')]));
    const upper = fresh();
    mkdirSync(upper);
    await applyLayer(next, upper, { layout: 'overlay', lowers: [new HostLayer(lower)] });
    const plain = fresh();
    execFileSync('cp', ['-a', lower, plain]);
    await applyLayer(next, plain);

    const [work2, merged] = [fresh(), fresh()];
    mkdirSync(work2);
    mkdirSync(merged);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work2}`, merged]);
    try {
      for (const path of ['tmp', 'srv', 'srv/deep']) {
        const [m, p] = [lstatSync(join(merged, path)), lstatSync(join(plain, path))];
        expect([m.mode, m.uid, m.gid], path).toEqual([p.mode, p.uid, p.gid]);
        expect(m.mtimeMs, path).toBe(stamp * 1000); // the layer did not change the directory itself
      }
      expect(getXattr(join(merged, 'srv'), 'user.kept')?.toString()).toBe('yes');
      expect(lstatSync(join(merged, 'new', 'dir')).mode & 0o7777).toBe(0o755); // nothing below: a new directory
      expect(readFileSync(join(merged, 'srv', 'deep', 'data'), 'utf8')).toBe('x\n');
    } finally {
      execFileSync('umount', [merged]);
    }
  });
});
