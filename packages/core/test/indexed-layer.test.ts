import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryLayer, TarLayer, writeEntries, type Entry } from '../src/index.js';

const entry = (path: string, type: Entry['type'], extra: Partial<Entry> = {}): Entry => ({ path, type, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: { sec: 0, nsec: 0 }, xattrs: new Map(), ...extra });

describe('indexed layers', () => {
  it('a hardlink set, chains included, shows one count and one identity on every name', () => {
    const layer = new MemoryLayer([
      { entry: entry('f', 'file'), content: Buffer.from('data') },
      { entry: entry('h1', 'hardlink', { linkname: 'f' }) },
      { entry: entry('h2', 'hardlink', { linkname: 'h1' }) },
      { entry: entry('alone', 'file'), content: Buffer.from('x') },
    ]);
    const [f, h1, h2, alone] = ['f', 'h1', 'h2', 'alone'].map((p) => layer.stat(p)!);
    expect([f!.nlink, h1!.nlink, h2!.nlink, alone!.nlink]).toEqual([3, 3, 3, 1]);
    expect(new Set([f!.identity, h1!.identity, h2!.identity]).size).toBe(1);
    expect(f!.identity).toBeDefined();
    expect(alone!.identity).toBeUndefined();
    expect(Buffer.from(layer.readAll('h2')).toString()).toBe('data');
  });
});

describe('TarLayer index cache', () => {
  const work = mkdtempSync(join(tmpdir(), 'strata-index-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const layerWith = async (name: string, files: Record<string, string>) => {
    const tar = join(work, name);
    await writeEntries(
      Object.entries(files).map(([path, text]) => ({ entry: entry(path, 'file', { size: text.length }), content: { kind: 'bytes' as const, bytes: Buffer.from(text) } })),
      tar,
    );
    return tar;
  };
  const names = (layer: TarLayer) => [...layer.children('.').keys()].sort();

  it('is kept only where asked, and reused while the tarball is the same file', async () => {
    const tar = await layerWith('a.tar', { one: '1', two: '22' });
    await TarLayer.open(tar);
    expect(readdirSync(work).filter((n) => n.includes('index'))).toEqual([]);
    const indexPath = join(work, 'cache', 'a.index');
    mkdirSync(join(work, 'cache'));
    expect(names(await TarLayer.open(tar, { indexPath }))).toEqual(['one', 'two']);
    expect(JSON.parse(readFileSync(indexPath, 'utf8')).records).toHaveLength(2);
    expect(names(await TarLayer.open(tar, { indexPath }))).toEqual(['one', 'two']);
    expect(readdirSync(join(work, 'cache'))).toEqual(['a.index']); // no temporaries left
  });

  it('is rebuilt when the tarball changed (another file renamed over it)', async () => {
    const indexPath = join(work, 'b.index');
    const tar = await layerWith('b.tar', { old: 'x' });
    await TarLayer.open(tar, { indexPath });
    const other = await layerWith('b2.tar', { new: 'y' });
    renameSync(other, tar);
    expect(names(await TarLayer.open(tar, { indexPath }))).toEqual(['new']);
  });

  it('is ignored when tampered with: unsafe paths, ranges past the tarball, malformed records', async () => {
    const tar = await layerWith('c.tar', { safe: 'content' });
    const indexPath = join(work, 'c.index');
    await TarLayer.open(tar, { indexPath });
    const good = readFileSync(indexPath, 'utf8');
    const tamper = (change: (index: { records: Array<{ entry: Record<string, unknown>; offset: number }> }) => void) => {
      const index = JSON.parse(good);
      change(index);
      writeFileSync(indexPath, JSON.stringify(index));
    };
    const cases: Array<(index: { records: Array<{ entry: Record<string, unknown>; offset: number }> }) => void> = [
      (i) => void (i.records[0]!.entry.path = '../escape'),
      (i) => void (i.records[0]!.entry.path = '/etc/passwd'),
      (i) => void (i.records[0]!.offset = 10 ** 9),
      (i) => void (i.records[0]!.entry.type = 'socket'),
      (i) => void (i.records[0]!.entry.size = -1),
      (i) => void (i.records = [{ entry: { path: 'h', type: 'hardlink', linkname: '../../x' }, offset: 0 }] as never),
    ];
    for (const change of cases) {
      tamper(change);
      const layer = await TarLayer.open(tar, { indexPath });
      expect(names(layer)).toEqual(['safe']);
      expect(Buffer.from(layer.readAll('safe')).toString()).toBe('content');
    }
    writeFileSync(indexPath, '{"version": 2, "records": [');
    expect(names(await TarLayer.open(tar, { indexPath }))).toEqual(['safe']);
  });

  it('survives many concurrent opens writing the same index', async () => {
    const tar = await layerWith('d.tar', Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, 'x'.repeat(i)])));
    const indexPath = join(work, 'd.index');
    const layers = await Promise.all(Array.from({ length: 16 }, () => TarLayer.open(tar, { indexPath })));
    for (const layer of layers) expect(layer.children('.').size).toBe(200);
    expect(JSON.parse(readFileSync(indexPath, 'utf8')).records).toHaveLength(200);
    expect(readdirSync(work).filter((n) => n.startsWith('d.index.tmp'))).toEqual([]);
  });
});
