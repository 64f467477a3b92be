import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLayer, decodeName, diffTrees, diffUpper, encodeName, HostLayer, MergedView, packDirectory, readLayer, writeChanges, type Entry } from '../src/index.js';
import { STAT, type LstatBatch } from '../src/native.js';
import { compareNames } from '../src/path.js';
import { DirectoryScan } from '../src/tree/host-walk.js';

const work = mkdtempSync(join(tmpdir(), 'strata-host-walk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Entry paths of a layer, in order. */
async function pathsOf(layer: string): Promise<string[]> {
  const paths: string[] = [];
  for await (const { entry } of readLayer(layer).entries()) paths.push(entry.path);
  return paths;
}

describe('walking a host directory', () => {
  it('lists a directory in byte order and lstats it a chunk at a time, each entry as lstat sees it', () => {
    const dir = join(work, 'large');
    mkdirSync(dir);
    // Names whose UTF-16 order differs from their UTF-8 byte order (astral against U+E000-U+FFFF), and
    // more of them than one chunk holds.
    const names = ['\u{1F600}', '\uFF21', 'Z', 'a', 'é', ...Array.from({ length: 600 }, (_, i) => `f${i}`)];
    names.forEach((name, i) => writeFileSync(join(dir, name), 'x'.repeat(i)));
    const scan = new DirectoryScan(dir);
    expect(scan.names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect([...scan.names].sort(compareNames)).toEqual(scan.names);
    const batches = new Set<LstatBatch>();
    scan.names.forEach((name, k) => {
      const batch = scan.seek(k);
      batches.add(batch);
      expect(batch.names[scan.index]).toBe(name);
      const st = lstatSync(join(dir, name));
      expect(batch.stats[scan.index * STAT.fields + STAT.size]).toBe(st.size);
      expect(batch.stats[scan.index * STAT.fields + STAT.inoLow]).toBe(st.ino % 2 ** 32);
    });
    // 605 entries: three native calls, none holding more than a chunk.
    expect(batches.size).toBe(3);
    for (const batch of batches) expect(batch.names.length).toBeLessThanOrEqual(256);
  });

  it('packs and diffs a large directory in the order GNU tar sorts it, hardlinks across chunks included', async () => {
    const tree = join(work, 'tree');
    const dir = join(tree, 'many');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 700; i++) writeFileSync(join(dir, `n${String(i).padStart(4, '0')}`), `${i}\n`);
    symlinkSync('n0001', join(dir, 'zz-link'));
    linkSync(join(dir, 'n0003'), join(dir, 'n0650-hard'));
    const layer = join(work, 'tree.tar');
    await packDirectory(tree, layer);
    const paths = await pathsOf(layer);
    const expected = ['many', ...[...Array.from({ length: 700 }, (_, i) => `n${String(i).padStart(4, '0')}`), 'n0650-hard', 'zz-link'].sort().map((n) => `many/${n}`)];
    expect(paths).toEqual(expected);
    const entries: Array<{ path: string; type: string; linkname?: string }> = [];
    for await (const { entry } of readLayer(layer).entries()) entries.push(entry);
    expect(entries.find((e) => e.path === 'many/n0650-hard')).toMatchObject({ type: 'hardlink', linkname: 'many/n0003' });
    // The same tree as an upper over an empty lower: the same entries, in the same order.
    const lower = join(work, 'lower');
    mkdirSync(lower);
    const changes = join(work, 'changes.tar');
    await writeChanges(diffUpper([new HostLayer(lower)], tree), changes);
    expect(await pathsOf(changes)).toEqual(expected);
  });

  it('packs and diffs names that are not UTF-8 with their bytes, as GNU tar and Docker do, and applies them back', async () => {
    const tree = join(work, 'latin1');
    const bytes = (path: string) => Buffer.from(`${tree}/${path}`, 'latin1');
    mkdirSync(bytes('d\xe9'), { recursive: true });
    writeFileSync(bytes('d\xe9/caf\xe9'), 'x');
    writeFileSync(bytes('d\xe9/big\xff'), Buffer.alloc(300_000, 'b')); // past one chunk: read through Node
    symlinkSync(Buffer.from('d\xe9/caf\xe9', 'latin1'), bytes('l\x80'));
    linkSync(bytes('d\xe9/caf\xe9'), bytes('h\xe9'));
    const names = ['d\xe9', 'd\xe9/big\xff', 'd\xe9/caf\xe9', 'h\xe9', 'l\x80'];
    const lower = join(work, 'latin1-lower');
    mkdirSync(lower);
    const layers = { pack: join(work, 'latin1.tar'), upper: join(work, 'latin1-upper.tar'), trees: join(work, 'latin1-trees.tar') };
    await packDirectory(tree, layers.pack);
    await writeChanges(diffUpper([new HostLayer(lower)], tree), layers.upper);
    await writeChanges(diffTrees(new MergedView([new HostLayer(lower)]), new MergedView([new HostLayer(tree)])), layers.trees);
    for (const layer of Object.values(layers)) {
      const entries: Entry[] = [];
      for await (const { entry } of readLayer(layer).entries()) entries.push(entry);
      expect(entries.map((e) => Buffer.from(encodeName(e.path)).toString('latin1'))).toEqual(names);
      expect(entries.find((e) => e.type === 'symlink')?.linkname).toBe(decodeName(Buffer.from('d\xe9/caf\xe9', 'latin1')));
      expect(entries.find((e) => e.type === 'hardlink')?.linkname).toBe(decodeName(Buffer.from('d\xe9/caf\xe9', 'latin1')));
      const applied = `${layer}.applied`;
      await applyLayer(layer, applied);
      expect(readFileSync(Buffer.from(`${applied}/h\xe9`, 'latin1'), 'utf8')).toBe('x');
      expect(readFileSync(Buffer.from(`${applied}/d\xe9/big\xff`, 'latin1'))).toEqual(Buffer.alloc(300_000, 'b'));
      expect(readlinkSync(Buffer.from(`${applied}/l\x80`, 'latin1'), { encoding: 'buffer' }).toString('latin1')).toBe('d\xe9/caf\xe9');
    }
    // The host layer lists them with their escapes and reads them through Node by their bytes.
    const host = new HostLayer(tree);
    const dir = decodeName(Buffer.from('d\xe9', 'latin1'));
    expect([...host.children(dir).keys()].sort()).toEqual(['big\udcff', 'caf\udce9']);
    expect(Buffer.from(host.readAll(`${dir}/caf\udce9`)).toString()).toBe('x');
    expect(host.readlink('l\udc80')).toBe(`${dir}/caf\udce9`);
  });

  it("packs a symlink whose target is not UTF-8 with the target's bytes (where U+FFFD was written)", async () => {
    const tree = join(work, 'latin1-link');
    mkdirSync(tree);
    symlinkSync(Buffer.from('caf\xe9', 'latin1'), Buffer.from(`${tree}/l`, 'latin1'));
    const out = join(work, 'latin1-link.tar');
    await packDirectory(tree, out);
    const bytes = readFileSync(out);
    expect(bytes.includes(Buffer.from('caf\xe9\0', 'latin1'))).toBe(true);
    expect(bytes.includes(Buffer.from('\ufffd', 'utf8'))).toBe(false);
  });

  it('takes a name that is U+FFFD itself, well-formed UTF-8, in every walk', async () => {
    const tree = join(work, 'replacement');
    mkdirSync(tree);
    writeFileSync(join(tree, 'a\uFFFDb'), 'x');
    const lower = join(work, 'replacement-lower');
    mkdirSync(lower);
    const expected = ['a\uFFFDb'];
    await packDirectory(tree, join(work, 'r1.tar'));
    await writeChanges(diffUpper([new HostLayer(lower)], tree), join(work, 'r2.tar'));
    await writeChanges(diffTrees(new MergedView([new HostLayer(lower)]), new MergedView([new HostLayer(tree)])), join(work, 'r3.tar'));
    for (const layer of ['r1', 'r2', 'r3']) expect(await pathsOf(join(work, `${layer}.tar`))).toEqual(expected);
  });
});
