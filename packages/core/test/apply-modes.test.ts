/**
 * File modes of an apply. Into an empty target, a file whose mode the umask leaves whole is created with it
 * (no chmod after); every other file gets its mode after writing. Either way the result is the layer's mode,
 * exactly: whatever the umask, under a default ACL on the target or set by the layer, and when the umask
 * changes while the apply runs (which fails it rather than leave modes short).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { needs } from '../../../test/helpers/oracle.js';
import { rawTar, type RawEntry } from '../../../test/helpers/raw-tar.js';
import { readUmask } from '../src/host/umask.js';
import { applyLayer, FailedPreconditionError } from '../src/index.js';
import { setXattr } from '../src/native.js';

vi.mock('../src/host/umask.js', async (original) => {
  const real = await original<typeof import('../src/host/umask.js')>();
  return { readUmask: vi.fn(real.readUmask) };
});

const { readUmask: realReadUmask } = await vi.importActual<typeof import('../src/host/umask.js')>('../src/host/umask.js');
const work = mkdtempSync(join(tmpdir(), 'strata-modes-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(work, `case-${++n}`);
const startingUmask = realReadUmask()!;
afterEach(() => {
  process.umask(startingUmask);
  vi.mocked(readUmask).mockImplementation(realReadUmask);
});

/** Files of every kind of mode, small ones and two that stream (larger than the reader's 1 MiB chunk). */
const MODES = [0o644, 0o755, 0o600, 0o444, 0o000, 0o666, 0o664, 0o777, 0o700, 0o4755, 0o2755, 0o1755, 0o6711];
const BIG = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
const files = (dir = ''): RawEntry[] => [
  ...MODES.map((mode) => ({ name: `${dir}f${mode.toString(8)}`, mode, data: `mode ${mode.toString(8)}\n` })),
  { name: `${dir}big755`, mode: 0o755, data: BIG },
  { name: `${dir}big664`, mode: 0o664, data: BIG },
];
const expected = (dir = '') => new Map<string, number>([...MODES.map((mode) => [`${dir}f${mode.toString(8)}`, mode] as const), [`${dir}big755`, 0o755], [`${dir}big664`, 0o664]]);

function layerFile(entries: RawEntry[]): string {
  const path = join(work, `layer-${++n}.tar`);
  writeFileSync(path, rawTar(entries));
  return path;
}

function modesIn(root: string, names: Iterable<string>): Map<string, number> {
  return new Map([...names].map((name) => [name, statSync(join(root, name)).mode & 0o7777]));
}

/** A default ACL that leaves new files only their owner's read and write: user::rw-, group::---, other::---. */
const RESTRICTIVE_DEFAULT_ACL = Buffer.from([2, 0, 0, 0, 0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);

describe('file modes of an apply', () => {
  it('every file gets exactly its mode, whatever the umask, into a new, an empty and a non-empty target', async () => {
    const layer = layerFile(files());
    for (const umask of [0o022, 0o077, 0o000, 0o777]) {
      process.umask(umask);
      const created = fresh();
      await applyLayer(layer, created);
      const empty = fresh();
      mkdirSync(empty);
      await applyLayer(layer, empty);
      const used = fresh();
      mkdirSync(used);
      writeFileSync(join(used, 'already'), 'here');
      await applyLayer(layer, used);
      for (const root of [created, empty, used]) expect(modesIn(root, expected().keys()), `umask ${umask.toString(8)}`).toEqual(expected());
    }
  });

  it.skipIf(!needs('strace'))('files the umask leaves whole are created with their mode, with no chmod after; the rest get one each', () => {
    const layer = layerFile(files());
    const traced = (umask: string, existing: boolean) => {
      const target = fresh();
      if (existing) {
        mkdirSync(target);
        writeFileSync(join(target, 'already'), 'here'); // not empty: no file is created with its mode
      }
      const log = join(work, `modes-${++n}.strace`);
      const script = `import { applyLayer } from '@strata/core'; process.umask(${umask}); await applyLayer(process.argv[1], process.argv[2]);`;
      execFileSync('strace', ['-f', '-qq', '-y', '-o', log, '-e', 'trace=fchmod', process.execPath, '--input-type=module', '-e', script, layer, target], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
      });
      expect(modesIn(target, expected().keys())).toEqual(expected());
      const chmodded = readFileSync(log, 'utf8')
        .split('\n')
        .flatMap((line) => /^\d+\s+fchmod\(\d+<[^>]*\/([^/>]+)>/.exec(line)?.[1] ?? []);
      return chmodded.sort();
    };
    // Under 022: the files with group or other write, and those with setuid, setgid or sticky bits.
    expect(traced('0o022', false)).toEqual(['big664', 'f1755', 'f2755', 'f4755', 'f664', 'f666', 'f6711', 'f777']);
    expect(traced('0o000', false)).toEqual(['f1755', 'f2755', 'f4755', 'f6711']);
    expect(traced('0o022', true)).toEqual([...expected().keys()].sort());
  });

  it.skipIf(!needs('strace'))('directories get their modes at the end by one fchmodat2 each (the kernel refusing to follow a symlink), not glibc\'s four calls', () => {
    const modes = [0o555, 0o750, 0o1777, 0o2755, 0o700, 0o000];
    const layer = layerFile(modes.map((mode) => ({ name: `d${mode.toString(8)}/`, type: '5', mode, mtime: 1_000_000 + mode })));
    const target = fresh();
    const log = join(work, `dirs-${++n}.strace`);
    const script = `import { applyLayer } from '@strata/core'; await applyLayer(process.argv[1], process.argv[2]);`;
    execFileSync('strace', ['-f', '-qq', '-o', log, process.execPath, '--input-type=module', '-e', script, layer, target], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    for (const mode of modes) {
      const st = statSync(join(target, `d${mode.toString(8)}`));
      expect([st.mode & 0o7777, st.mtimeMs / 1000]).toEqual([mode, 1_000_000 + mode]);
    }
    const calls = readFileSync(log, 'utf8').split('\n');
    // glibc's AT_SYMLINK_NOFOLLOW before 2.39: openat(O_PATH), fstatat, chmod of /proc/self/fd/N, close.
    expect(calls.filter((line) => /\bchmod\("\/proc\/self\/fd\//.test(line))).toEqual([]);
    // fchmodat2 (452; strace 6.1 has no name for it), with AT_SYMLINK_NOFOLLOW (0x100): one per directory.
    const fchmodat2 = calls.filter((line) => /\b(fchmodat2|syscall_0x1c4)\(/.test(line));
    expect(fchmodat2).toHaveLength(modes.length);
    for (const line of fchmodat2) expect(line).toMatch(/AT_SYMLINK_NOFOLLOW\)|\((?:0x[0-9a-f]+|0), 0x[0-9a-f]+, (?:0x[0-9a-f]+|0), 0x100\b/);
  });

  it('under a default ACL on the target, files still get exactly their modes', async () => {
    process.umask(0o022);
    const target = fresh();
    mkdirSync(target);
    setXattr(target, 'system.posix_acl_default', RESTRICTIVE_DEFAULT_ACL);
    // The first file's mode is one the ACL leaves whole: the check of the first file sees nothing amiss.
    await applyLayer(layerFile([{ name: 'first', mode: 0o600, data: 'a' }, ...files()]), target);
    expect(modesIn(target, ['first', ...expected().keys()])).toEqual(new Map([['first', 0o600], ...expected()]));
  });

  it('under a default ACL the layer sets on a directory, files made below it still get exactly their modes', async () => {
    process.umask(0o022);
    const target = fresh();
    const layer = layerFile([
      { name: 'plain/', type: '5', mode: 0o755 },
      ...files('plain/'),
      { name: 'acl/', type: '5', mode: 0o755, pax: { 'SCHILY.xattr.system.posix_acl_default': RESTRICTIVE_DEFAULT_ACL } },
      ...files('acl/'),
    ]);
    await applyLayer(layer, target);
    expect(modesIn(target, expected('plain/').keys())).toEqual(expected('plain/'));
    expect(modesIn(target, expected('acl/').keys())).toEqual(expected('acl/'));
  });

  it('a file system that does not give a created file its mode is caught at the first file, and the rest are set after writing', async () => {
    // As if the umask were 0 while it is 022: a file created with 0664 gets 0644 from the kernel.
    process.umask(0o022);
    vi.mocked(readUmask).mockImplementation(() => 0);
    const target = fresh();
    await applyLayer(layerFile([{ name: 'first', mode: 0o664, data: 'a' }, ...files()]), target);
    expect(modesIn(target, ['first', ...expected().keys()])).toEqual(new Map([['first', 0o664], ...expected()]));
  });

  it('a umask changed while an apply creates files fails it (FAILED_PRECONDITION); applying again gives every mode', async () => {
    process.umask(0o022);
    const bytes = rawTar([...files('a/'), ...files('b/')]);
    const half = Math.ceil(bytes.length / 2 / 512) * 512;
    async function* changingUmask() {
      yield bytes.subarray(0, half);
      process.umask(0o077);
      yield bytes.subarray(half);
    }
    const target = fresh();
    await expect(applyLayer(changingUmask(), target)).rejects.toBeInstanceOf(FailedPreconditionError);
    expect(readdirSync(work).filter((name) => name.includes(basename(target)))).toEqual([]); // nothing left, staging included
    await applyLayer(changingUmask(), target);
    // The umask is 077 from the middle of the first try on: the second one, all under 077, holds.
    expect(modesIn(target, [...expected('a/').keys(), ...expected('b/').keys()])).toEqual(new Map([...expected('a/'), ...expected('b/')]));
  });
});
