/**
 * Owners a rootless unpack cannot give, kept as umoci keeps them: the `user.rootlesscontainers` xattr (the
 * rootlesscontainers.io protobuf). The record's bytes, an apply that writes records (`owners: 'xattr'`),
 * and the writer's reading them back (`mapEntryOwner`). The same records against umoci itself are in
 * images-oracles.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  applyLayer,
  callerAsRoot,
  containerOwner,
  decodeRootlessOwner,
  encodeRootlessOwner,
  HostLayer,
  mapEntryOwner,
  readLayer,
  ROOTLESS_OWNER_XATTR,
  walkHostDirectory,
  writeEntries,
  type Entry,
} from '@strata/core';
import { needs } from './helpers/oracle.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';
import { getXattr, setXattr } from './helpers/host.js';

const strataCli = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'strata.cjs');
const work = mkdtempSync(join(tmpdir(), 'strata-rootless-owners-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const layerFile = (entries: RawEntry[]) => {
  const path = join(work, `l${++n}.tar`);
  writeFileSync(path, rawTar(entries));
  return path;
};
const hex = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('hex'));
const record = (path: string) => hex(getXattr(path, ROOTLESS_OWNER_XATTR));

describe('owner records', () => {
  it("are umoci's bytes: each id other than root's, 0xFFFFFFFF for root's half, none for 0:0", () => {
    // As `umoci unpack --rootless` wrote them for these owners (read back with getfattr).
    expect(hex(encodeRootlessOwner(100, 0, 'a'))).toBe('086410ffffffff0f');
    expect(hex(encodeRootlessOwner(7, 8, 'd'))).toBe('08071008');
    expect(hex(encodeRootlessOwner(0, 1000, 'd/b'))).toBe('08ffffffff0f10e807');
    expect(encodeRootlessOwner(0, 0, 'x')).toBeUndefined();
    expect(() => encodeRootlessOwner(0xffffffff, 0, 'x')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });

  it('read back as proto3 reads them: missing fields 0, unknown fields skipped, anything else refused', () => {
    expect(decodeRootlessOwner(Buffer.from('086410ffffffff0f', 'hex'), 'a')).toEqual({ uid: 100, gid: undefined });
    expect(decodeRootlessOwner(Buffer.from('08ffffffff0f10e807', 'hex'), 'a')).toEqual({ uid: undefined, gid: 1000 });
    expect(decodeRootlessOwner(new Uint8Array(0), 'a')).toEqual({ uid: 0, gid: 0 });
    expect(decodeRootlessOwner(Buffer.from('1005', 'hex'), 'a')).toEqual({ uid: 0, gid: 5 });
    // Fields 3 (varint), 4 (bytes) and 5 (fixed32) are skipped; the last of a repeated field wins.
    expect(decodeRootlessOwner(Buffer.from('0801' + '1801' + '2203616263' + '2d01020304' + '0802', 'hex'), 'a')).toEqual({ uid: 2, gid: 0 });
    for (const bad of ['08', '0a0164', '088080808010', '2205ab', '0b', '0001', 'ff']) {
      expect(() => decodeRootlessOwner(Buffer.from(bad, 'hex'), 'some/file'), bad).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('some/file') }));
    }
  });

  it("give a rootless writer the recorded owner, the record left out of the layer, the map's for a root half", async () => {
    const map = callerAsRoot(65_534, 65_534);
    const entry = (xattrs: [string, string][]): Entry => ({
      path: 'etc/shadow',
      type: 'file',
      mode: 0o640,
      uid: 65_534,
      gid: 65_534,
      size: 0,
      mtime: { sec: 1_700_000_000, nsec: 0 },
      xattrs: new Map(xattrs.map(([k, v]) => [k, Buffer.from(v, 'hex')])),
    });
    expect(mapEntryOwner(entry([[ROOTLESS_OWNER_XATTR, '08ffffffff0f102a'], ['user.other', '01']]), map)).toMatchObject({ uid: 0, gid: 42, xattrs: new Map([['user.other', Buffer.from('01', 'hex')]]) });
    expect(containerOwner(65_534, 65_534, undefined, map, 'x')).toEqual({ uid: 0, gid: 0 });
    expect(containerOwner(1000, 65_534, Buffer.from('0864', 'hex'), map, 'x')).toBeUndefined(); // the host owner must still be the caller's
    expect(() => mapEntryOwner(entry([[ROOTLESS_OWNER_XATTR, '0b']]), map)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    const out = join(work, 'mapped.tar');
    await writeEntries([{ entry: entry([[ROOTLESS_OWNER_XATTR, '0864102a']]) }], out, { idMap: map });
    for await (const { entry: e } of readLayer(out)) expect([e.uid, e.gid, [...e.xattrs.keys()]]).toEqual([100, 42, []]);
  });
});

describe("applyLayer with owners: 'xattr'", () => {
  const owned: RawEntry[] = [
    { name: 'd/', type: '5', mode: 0o755, uid: 7, gid: 8 },
    { name: 'd/b', data: 'b\n', uid: 0, gid: 1000 },
    { name: 'a', data: 'a\n', uid: 100, gid: 0 },
    { name: 'root-owned', data: 'r\n' },
    { name: 'l', type: '2', linkname: 'a', uid: 5, gid: 5 },
    // A layer's own record is not the entry's owner: dropped, the entry's own written instead.
    { name: 'forged', data: 'f\n', pax: { [`SCHILY.xattr.${ROOTLESS_OWNER_XATTR}`]: Buffer.from('0801', 'hex') } },
  ];

  it('keeps each owner other than root in a record, leaves files the caller\'s, reports the owners with their types', async () => {
    const target = join(work, 'plain');
    const warnings: string[] = [];
    const result = await applyLayer(layerFile(owned), target, { owners: 'xattr', onWarning: (m, p) => warnings.push(`${p}: ${m}`) });
    expect([record(join(target, 'd')), record(join(target, 'd/b')), record(join(target, 'a'))]).toEqual(['08071008', '08ffffffff0f10e807', '086410ffffffff0f']);
    expect([record(join(target, 'root-owned')), record(join(target, 'forged'))]).toEqual([undefined, undefined]);
    expect(lstatSync(join(target, 'a')).uid).toBe(process.geteuid!()); // not chowned, even as root
    expect(result.owners).toEqual([
      { path: 'd', type: 'directory', uid: 7, gid: 8 },
      { path: 'd/b', type: 'file', uid: 0, gid: 1000 },
      { path: 'a', type: 'file', uid: 100, gid: 0 },
      { path: 'l', type: 'symlink', uid: 5, gid: 5 },
    ]);
    // The kernel takes no user.* xattr on a symlink (umoci warns the same way).
    expect(warnings).toEqual([
      expect.stringMatching(/^l: xattr "user.rootlesscontainers" not set: the file system refused it \(EPERM\)/),
      expect.stringMatching(/^forged: dropping the layer's "user.rootlesscontainers" xattr/),
    ]);

    // A later layer that gives root a directory an earlier one recorded takes the record away; a replaced
    // file starts without one.
    await applyLayer(layerFile([{ name: 'd/', type: '5', mode: 0o755 }, { name: 'a', data: 'now root\n' }, { name: 'd/b', data: 'b\n', uid: 3, gid: 0 }]), target, { owners: 'xattr' });
    expect([record(join(target, 'd')), record(join(target, 'a')), record(join(target, 'd/b'))]).toEqual([undefined, undefined, '080310ffffffff0f']);
  });

  it('copies a lower directory\'s record with it where an overlay-layout apply makes it as a parent', async () => {
    const lower = join(work, 'lower');
    mkdirSync(join(lower, 'p'), { recursive: true });
    setXattr(join(lower, 'p'), ROOTLESS_OWNER_XATTR, Buffer.from('08071008', 'hex'));
    symlinkSync('p', join(lower, 'q'));
    const upper = join(work, 'upper');
    await applyLayer(layerFile([{ name: 'p/x', data: 'x\n', uid: 9, gid: 9 }]), upper, { owners: 'xattr', layout: 'overlay', xattrNamespace: 'user', lowers: [new HostLayer(lower)] });
    expect([record(join(upper, 'p')), record(join(upper, 'p/x'))]).toEqual(['08071008', '08091009']);
    // Read back by a rootless writer, the walk of the upper gives the owners the layer and the lower had.
    const owners: string[] = [];
    const map = callerAsRoot(process.geteuid!(), process.getegid!());
    for (const { entry } of walkHostDirectory(upper)) {
      const mapped = mapEntryOwner(entry, map);
      owners.push(`${entry.path} ${mapped.uid}:${mapped.gid}`);
    }
    expect(owners.slice(-2)).toEqual(['p 7:8', 'p/x 9:9']);
  });

  it.skipIf(!needs('root'))('is what `strata apply --owners xattr` does without root; `--owners keep` records nothing', () => {
    const home = join(work, 'nobody');
    mkdirSync(home);
    chownSync(home, 65_534, 65_534);
    chmodSync(work, 0o755);
    const layer = layerFile(owned);
    chmodSync(layer, 0o644);
    const asNobody = (...args: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, strataCli, ...args], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    const recorded = asNobody('apply', '--owners', 'xattr', layer, join(home, 'recorded'));
    expect(recorded.status, recorded.stderr).toBe(0);
    expect([record(join(home, 'recorded', 'd')), record(join(home, 'recorded', 'a'))]).toEqual(['08071008', '086410ffffffff0f']);
    expect(recorded.stderr).toContain('strata: warning: l: xattr "user.rootlesscontainers" not set');
    const kept = asNobody('apply', '--owners', 'keep', layer, join(home, 'kept'));
    expect(kept.status, kept.stderr).toBe(0);
    expect([record(join(home, 'kept', 'd')), record(join(home, 'kept', 'a'))]).toEqual([undefined, undefined]);
    expect(lstatSync(join(home, 'kept', 'a')).uid).toBe(65_534);
  });
});
