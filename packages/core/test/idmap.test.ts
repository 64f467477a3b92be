import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callerAsRoot, mapEntryOwner, readLayer, toContainerId, toHostId, writeEntries, type Entry, type IdMap } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'strata-idmap-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const entry = (path: string, uid: number, gid: number, type: Entry['type'] = 'file'): Entry => ({
  path,
  type,
  mode: type === 'directory' ? 0o755 : 0o644,
  uid,
  gid,
  size: 0,
  mtime: { sec: 1_700_000_000, nsec: 0 },
  xattrs: new Map(),
});

describe('id maps', () => {
  const map: IdMap = { uids: [{ containerID: 0, hostID: 1000, size: 1 }, { containerID: 1, hostID: 100_000, size: 65_536 }], gids: [{ containerID: 0, hostID: 1000, size: 1 }] };

  it('map ids both ways through every range, and nothing outside them', () => {
    expect(toContainerId(map.uids, 1000)).toBe(0);
    expect(toContainerId(map.uids, 100_000)).toBe(1);
    expect(toContainerId(map.uids, 165_535)).toBe(65_536);
    expect(toContainerId(map.uids, 165_536)).toBeUndefined();
    expect(toContainerId(map.uids, 0)).toBeUndefined();
    expect(toHostId(map.uids, 0)).toBe(1000);
    expect(toHostId(map.uids, 33)).toBe(100_032);
    expect(toHostId(map.gids, 1)).toBeUndefined();
    expect(callerAsRoot(65_534, 65_534)).toEqual({ uids: [{ containerID: 0, hostID: 65_534, size: 1 }], gids: [{ containerID: 0, hostID: 65_534, size: 1 }] });
  });

  it("give entries the namespace's owners, leave whiteouts alone, and refuse an owner the map has no id for", () => {
    expect(mapEntryOwner(entry('etc/passwd', 1000, 1000), map)).toMatchObject({ uid: 0, gid: 0 });
    const whiteout = entry('etc/.wh.gone', 0, 0);
    expect(mapEntryOwner(whiteout, map)).toBe(whiteout);
    expect(() => mapEntryOwner(entry('home/x', 5, 1000), map)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('5:1000') }));
  });

  it('written through a map, a layer carries the mapped owners; an unmapped one fails the write', async () => {
    const out = join(work, 'mapped.tar');
    await writeEntries([{ entry: entry('a', 1000, 1000) }, { entry: entry('d', 100_004, 1000, 'directory') }, { entry: entry('.wh.b', 0, 0) }], out, { idMap: map });
    const owners: string[] = [];
    for await (const { entry: e } of readLayer(out)) owners.push(`${e.path} ${e.uid}:${e.gid}`);
    expect(owners).toEqual(['a 0:0', 'd 5:0', '.wh.b 0:0']);
    await expect(writeEntries([{ entry: entry('a', 7, 7) }], join(work, 'refused.tar'), { idMap: map })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});
