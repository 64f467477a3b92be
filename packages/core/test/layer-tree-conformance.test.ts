/**
 * One conformance suite for every `LayerTree` source, as every containerd snapshotter runs one suite: the
 * same layer held in memory, as an indexed tarball, and as a host directory in both whiteout forms must
 * read the same through the interface (entries, whiteouts, opaque directories, metadata, hardlinks,
 * content).
 */
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, linkSync, chmodSync, lchownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer, HostLayer, MemoryLayer, TarLayer, writeEntries, type Entry, type LayerTree, type MemoryEntry } from '../src/index.js';
import { lutimens, mknod, setXattr } from '../src/native.js';
import { S_IFCHR, S_IFIFO } from '../src/mode.js';
import { needs } from '../../../test/helpers/oracle.js';

const T = { sec: 1_700_000_000, nsec: 250_000_000 };
const e = (path: string, type: Entry['type'], extra: Partial<Entry> = {}): Entry => ({ path, type, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: T, xattrs: new Map(), ...extra });
const bytes = (text: string) => new TextEncoder().encode(text);

/** The layer, as OCI entries (whiteouts by name). */
const LAYER: MemoryEntry[] = [
  { entry: e('d', 'directory', { mode: 0o750, uid: 1000, gid: 1000 }) },
  { entry: e('d/f', 'file', { size: 5, xattrs: new Map([['user.a', bytes('b')]]) }), content: bytes('hello') },
  { entry: e('d/.wh.old', 'file') },
  { entry: e('g', 'file', { mode: 0o600, size: 3 }), content: bytes('abc') },
  { entry: e('l', 'symlink', { mode: 0o777, linkname: 'd/f' }) },
  { entry: e('h1', 'file', { size: 6 }), content: bytes('shared') },
  { entry: e('h2', 'hardlink', { linkname: 'h1' }) },
  { entry: e('.wh.gone', 'file') },
  { entry: e('o', 'directory', { mode: 0o755 }) },
  { entry: e('o/.wh..wh..opq', 'file') },
  { entry: e('o/k', 'file', { size: 1 }), content: bytes('k') },
  { entry: e('p', 'fifo', { mode: 0o640 }) },
  { entry: e('c', 'char', { mode: 0o600, devmajor: 1, devminor: 3 }) },
  { entry: e('both', 'file', { size: 4 }), content: bytes('kept') },
  { entry: e('.wh.both', 'file') },
  { entry: e('.wh..wh.plnk', 'directory', { mode: 0o700 }) },
];

let work: string;
/** [name, needs root (a host directory holding a device and overlay whiteouts), open]. */
const sources: Array<[string, boolean, () => Promise<LayerTree>]> = [
  ['memory', false, async () => new MemoryLayer(LAYER)],
  [
    'indexed tarball',
    false,
    async () => {
      const tar = join(work, 'layer.tar');
      await writeEntries(LAYER.map(({ entry, content }) => (content ? { entry, content: { kind: 'bytes' as const, bytes: content } } : { entry })), tar);
      return TarLayer.open(tar);
    },
  ],
  [
    'host directory, overlay form',
    true,
    async () => {
      const tar = join(work, 'for-overlay.tar');
      await writeEntries(LAYER.map(({ entry, content }) => (content ? { entry, content: { kind: 'bytes' as const, bytes: content } } : { entry })), tar);
      const dir = join(work, 'overlay-form');
      await applyLayer(tar, dir, { layout: 'overlay' });
      return new HostLayer(dir, { whiteouts: 'overlay' });
    },
  ],
  [
    'host directory, OCI form',
    true,
    async () => {
      // Built by hand, as a tool that keeps OCI whiteout files on disk would leave it.
      const dir = join(work, 'oci-form');
      mkdirSync(join(dir, 'd'), { recursive: true });
      writeFileSync(join(dir, 'd', 'f'), 'hello');
      setXattr(join(dir, 'd', 'f'), 'user.a', bytes('b'));
      writeFileSync(join(dir, 'd', '.wh.old'), '');
      writeFileSync(join(dir, 'g'), 'abc', { mode: 0o600 });
      chmodSync(join(dir, 'g'), 0o600);
      symlinkSync('d/f', join(dir, 'l'));
      writeFileSync(join(dir, 'h1'), 'shared');
      linkSync(join(dir, 'h1'), join(dir, 'h2'));
      writeFileSync(join(dir, '.wh.gone'), '');
      mkdirSync(join(dir, 'o'));
      writeFileSync(join(dir, 'o', '.wh..wh..opq'), '');
      writeFileSync(join(dir, 'o', 'k'), 'k');
      mknod(join(dir, 'p'), S_IFIFO, 0o640);
      mknod(join(dir, 'c'), S_IFCHR, 0o600, 1, 3);
      writeFileSync(join(dir, 'both'), 'kept');
      writeFileSync(join(dir, '.wh.both'), '');
      mkdirSync(join(dir, '.wh..wh.plnk'), { mode: 0o700 });
      chmodSync(join(dir, 'd'), 0o750);
      lchownSync(join(dir, 'd'), 1000, 1000);
      for (const p of ['d/f', 'g', 'h1', 'o/k', 'p', 'c', 'both', 'l', 'd', 'o']) lutimens(join(dir, p), T, T);
      return new HostLayer(dir, { whiteouts: 'oci' });
    },
  ],
];

describe('LayerTree conformance', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'strata-conformance-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const [name, root, open] of sources) {
    describe.skipIf(root && !needs('root'))(name, () => {
      let layer: LayerTree;
      beforeAll(async () => {
        layer = await open();
      });

      it('lists entries and whiteouts; an entry beats a whiteout of its name; markers and aufs names are not children', () => {
        const kinds = (dir: string) => Object.fromEntries([...layer.children(dir)].map(([n, node]) => [n, node.kind === 'whiteout' ? 'whiteout' : node.type]).sort());
        expect(kinds('.')).toEqual({ both: 'file', c: 'char', d: 'directory', g: 'file', gone: 'whiteout', h1: 'file', h2: 'file', l: 'symlink', o: 'directory', p: 'fifo' });
        expect(kinds('d')).toEqual({ f: 'file', old: 'whiteout' });
        expect(kinds('o')).toEqual({ k: 'file' });
        expect(layer.children('g').size).toBe(0);
        expect(layer.children('nowhere').size).toBe(0);
      });

      it('knows opaque directories', () => {
        expect(layer.isOpaque('o')).toBe(true);
        expect(layer.isOpaque('d')).toBe(false);
        expect(layer.isOpaque('.')).toBe(false);
      });

      it('stats entries with their metadata, undefined for what it lacks', () => {
        const d = layer.stat('d')!;
        expect([d.type, d.mode, d.uid, d.gid, d.mtime]).toEqual(['directory', 0o750, 1000, 1000, T]);
        const f = layer.stat('d/f')!;
        expect([f.type, f.mode, f.size, f.mtime, Buffer.from(f.xattrs.get('user.a')!).toString()]).toEqual(['file', 0o644, 5, T, 'b']);
        expect(layer.stat('g')!.mode).toBe(0o600);
        expect(layer.stat('l')!.linkname).toBe('d/f');
        const c = layer.stat('c')!;
        expect([c.type, c.devmajor, c.devminor]).toEqual(['char', 1, 3]);
        expect(layer.stat('p')!.type).toBe('fifo');
        expect(layer.stat('gone')).toBeUndefined();
        expect(layer.stat('missing')).toBeUndefined();
      });

      it('shows hardlinks as one content with several names', () => {
        const [a, b] = [layer.stat('h1')!, layer.stat('h2')!];
        expect([a.type, b.type, a.nlink, b.nlink]).toEqual(['file', 'file', 2, 2]);
        expect(a.identity).toBeDefined();
        expect(a.identity).toBe(b.identity);
      });

      it('reads symlinks, and refuses readlink of anything else with EINVAL', () => {
        expect(layer.readlink('l')).toBe('d/f');
        expect(() => layer.readlink('g')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      });

      it('reads content streamed, whole, piecewise, and copies it to a host file', async () => {
        const chunks: Uint8Array[] = [];
        for await (const chunk of layer.read('d/f')) chunks.push(Buffer.from(chunk));
        expect(Buffer.concat(chunks).toString()).toBe('hello');
        expect(Buffer.from(layer.readAll('h2')).toString()).toBe('shared');
        const reader = layer.openContent('h1');
        const buffer = Buffer.alloc(4);
        expect(reader.read(buffer, 2)).toBe(4);
        expect(buffer.toString()).toBe('ared');
        expect(reader.read(buffer, 6)).toBe(0);
        reader.close();
        const copy = join(work, `copy-${name.replace(/\W/g, '-')}`);
        layer.copyFileTo('g', copy);
        expect(readFileSync(copy, 'utf8')).toBe('abc');
        expect(lstatSync(copy).isFile()).toBe(true);
      });
    });
  }
});
