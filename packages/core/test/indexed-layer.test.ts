import { describe, expect, it } from 'vitest';
import { MemoryLayer, type Entry } from '../src/index.js';

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
