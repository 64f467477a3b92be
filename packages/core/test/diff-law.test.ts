/**
 * The diff law over trees in memory: for any trees A and B, A with the layer `diffTrees(A, B)` on top reads
 * as B (every path, type, mode, owner, time, link target, xattr and content). No root, no kernel: the layer
 * is written by the real writer and read back as an indexed tarball.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { diffTrees, MemoryLayer, MergedView, TarLayer, writeChanges, type Entry, type MemoryEntry } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'strata-law-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const NAMES = ['a', 'b', 'd', 'd/a', 'd/b', 'd/e', 'd/e/a', 'x', 'x/y'];

const nodeArb = fc.record({
  kind: fc.constantFrom('file', 'file', 'dir', 'symlink'),
  content: fc.constantFrom('', 'one', 'two', 'three\n'),
  mode: fc.constantFrom(0o644, 0o600, 0o755),
  uid: fc.constantFrom(0, 1000),
  sec: fc.constantFrom(1_700_000_000, 1_700_000_001),
  nsec: fc.constantFrom(0, 5),
  target: fc.constantFrom('a', 'd/a', '/etc/x'),
  xattr: fc.option(fc.constantFrom('v1', 'v2'), { nil: undefined }),
});

/** A tree over NAMES: each name is absent or a node; a name under a non-directory is dropped. */
const treeArb = fc.array(fc.option(nodeArb, { nil: undefined }), { minLength: NAMES.length, maxLength: NAMES.length }).map((nodes) => {
  const entries: MemoryEntry[] = [];
  const kinds = new Map<string, string>();
  NAMES.forEach((name, i) => {
    const node = nodes[i];
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : undefined;
    if (node === undefined || (parent !== undefined && kinds.get(parent) !== 'dir')) return;
    kinds.set(name, node.kind);
    const xattrs = new Map<string, Uint8Array>(node.xattr ? [['user.k', Buffer.from(node.xattr)]] : []);
    const base = { path: name, mode: node.mode, uid: node.uid, gid: 0, mtime: { sec: node.sec, nsec: node.nsec }, xattrs };
    if (node.kind === 'dir') entries.push({ entry: { ...base, type: 'directory', size: 0 } });
    else if (node.kind === 'symlink') entries.push({ entry: { ...base, type: 'symlink', mode: 0o777, size: 0, linkname: node.target } });
    else entries.push({ entry: { ...base, type: 'file', size: node.content.length }, content: Buffer.from(node.content) });
  });
  // Directories implied by their children exist in both trees with the same (implicit) metadata.
  return entries;
});

/** Everything the merged view shows, with content, as comparable records. */
function picture(view: MergedView): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const node of view.walk()) {
    const st = view.stat(node.path)!;
    const content = st.type === 'file' ? Buffer.from(view.layers[node.layer]!.readAll(node.path)).toString() : undefined;
    const xattrs = Object.fromEntries([...st.xattrs].map(([k, v]) => [k, Buffer.from(v).toString()]));
    out[node.path] = { type: st.type, mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtime, linkname: st.linkname, size: st.size, content, xattrs };
  }
  return out;
}

describe('diffTrees law', () => {
  it('A with diffTrees(A, B) on top reads as B', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(treeArb, treeArb, async (a, b) => {
        const from = new MemoryLayer(a);
        const to = new MemoryLayer(b);
        const layer = join(work, `diff-${++n}.tar`);
        // exact: contents of equal size and time are compared (without it metadata decides, by design).
        await writeChanges(diffTrees(new MergedView([from]), new MergedView([to]), { exact: true }), layer);
        const applied = new MergedView([from, await TarLayer.open(layer)]);
        expect(picture(applied)).toEqual(picture(new MergedView([to])));
      }),
      { numRuns: Number(process.env.STRATA_DIFF_RUNS ?? 200), seed: 7 },
    );
  });

  it('a diff of a tree with itself is empty', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, async (a) => {
        const changes: Entry[] = [];
        for await (const change of diffTrees(new MergedView([new MemoryLayer(a)]), new MergedView([new MemoryLayer(a)]))) {
          if (change.kind === 'add' || change.kind === 'modify') changes.push(change.entry);
        }
        expect(changes).toEqual([]);
      }),
      { numRuns: 100, seed: 8 },
    );
  });
});
