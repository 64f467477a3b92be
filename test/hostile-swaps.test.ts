/**
 * Layers that use a path, then swap it (or a directory above it) for a symlink leading out of the target,
 * so that a step run later (directory modes and times, hardlinks linked at the end, overlay deletions)
 * would act outside. Found by fuzzing; each shape is a named test, and a property checks the class: for
 * any layer over a few shared names, applied in both layouts onto a target with escaping symlinks planted
 * in it, nothing outside the target changes.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyLayer, isStrataError, type ApplyLayout } from '@strata/core';
import { needs } from './helpers/oracle.js';
import { rawTar, type RawEntry } from './helpers/raw-tar.js';
import { diffSnapshots, snapshotTree } from './helpers/snapshot.js';

/** From the target (sandbox/a/b/target), `../../../outside` is sandbox/outside. */
const OUT = '../../../outside';

const file = (name: string, data = 'pwned\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });
const dir = (name: string, mode = 0o755): RawEntry => ({ name: `${name}/`, type: '5', mode });
const symlink = (name: string, linkname: string): RawEntry => ({ name, type: '2', linkname });
const hardlink = (name: string, linkname: string): RawEntry => ({ name, type: '1', linkname });

interface Shape {
  name: string;
  layout: ApplyLayout;
  layer: RawEntry[];
  /** What must hold in the target afterwards (the last entry for a path wins). */
  check: (target: string) => void;
}

const shapes: Shape[] = [
  {
    name: 'a directory made setuid, then swapped for a symlink to an outside file, does not make that file setuid',
    layout: 'plain',
    layer: [dir('d', 0o4755), symlink('d', `${OUT}/secret`)],
    check: (t) => expect(readlinkSync(join(t, 'd'))).toBe(`${OUT}/secret`),
  },
  {
    name: 'a subdirectory whose parent is then swapped for a symlink out does not change an outside directory',
    layout: 'plain',
    layer: [dir('p'), dir('p/sub', 0o700), symlink('p', OUT)],
    check: (t) => expect(lstatSync(join(t, 'p')).isSymbolicLink()).toBe(true),
  },
  {
    name: 'a hardlink before its target, under a parent then swapped for a symlink out, creates nothing outside',
    layout: 'plain',
    layer: [dir('p'), hardlink('p/created', 't'), symlink('p', OUT), file('t', 'target\n')],
    check: (t) => expect(lstatSync(join(t, 't')).isFile()).toBe(true),
  },
  {
    name: 'a hardlink before its target, under a parent then swapped for a symlink out, overwrites no outside file',
    layout: 'plain',
    layer: [dir('p'), hardlink('p/secret', 't'), symlink('p', OUT), file('t', 'target\n')],
    check: (t) => expect(lstatSync(join(t, 'p')).isSymbolicLink()).toBe(true),
  },
  {
    name: 'a hardlink before its target, under a parent then swapped for a symlink out, removes no outside directory',
    layout: 'plain',
    layer: [dir('p'), hardlink('p/tree', 't'), symlink('p', OUT), file('t', 'target\n')],
    check: (t) => expect(lstatSync(join(t, 'p')).isSymbolicLink()).toBe(true),
  },
  {
    name: 'overlay layout: a whiteout under a parent then swapped for a symlink out, then a root opaque marker, unlinks nothing outside',
    layout: 'overlay',
    layer: [dir('p'), file('p/.wh.secret', ''), symlink('p', OUT), file('.wh..wh..opq', '')],
    check: (t) => expect(lstatSync(join(t, 'p')).isSymbolicLink()).toBe(true),
  },
];

describe('layers that swap a path for a symlink after using it', () => {
  let sandbox: string;
  let target: string;

  beforeEach(() => {
    sandbox = mkdtempSync(join(tmpdir(), 'strata-swap-'));
    mkdirSync(join(sandbox, 'outside', 'sub'), { recursive: true, mode: 0o755 });
    mkdirSync(join(sandbox, 'outside', 'tree', 'deep'), { recursive: true });
    writeFileSync(join(sandbox, 'outside', 'tree', 'deep', 'keep'), 'keep\n');
    writeFileSync(join(sandbox, 'outside', 'secret'), 'do not touch\n', { mode: 0o644 });
    mkdirSync(join(sandbox, 'a', 'b'), { recursive: true });
    target = join(sandbox, 'a', 'b', 'target');
  });
  afterEach(() => rmSync(sandbox, { recursive: true, force: true }));

  /** Everything outside the target, directory times included (but for the target's own parent, which the apply renames into). */
  const outside = () => {
    const all = snapshotTree(sandbox, { skip: (path) => path === 'a/b/target' || path.startsWith('a/b/.target.') });
    const parent = all.get('a/b');
    if (parent) delete parent.mtimeNs;
    return all;
  };

  for (const shape of shapes) {
    it(shape.name, async () => {
      const before = outside();
      await applyLayer(rawTar(shape.layer), target, { layout: shape.layout });
      expect(diffSnapshots(before, outside())).toEqual([]);
      shape.check(target);
    });
  }

  it('property: no layer over shared names, in either layout, onto escaping symlinks, changes anything outside', async () => {
    const names = ['a', 'b', 'a/b', 'a/c', 'b/a', 's', 's/x'];
    const links = [OUT, `${OUT}/secret`, `${OUT}/sub`, '/', '/etc', '..', 'a', 's', '../..'];
    const entry = fc.oneof(
      fc.record({ kind: fc.constant('dir' as const), name: fc.constantFrom(...names), mode: fc.constantFrom(0o755, 0o4755, 0o700, 0o1777) }),
      fc.record({ kind: fc.constant('file' as const), name: fc.constantFrom(...names), mode: fc.constantFrom(0o644, 0o6755) }),
      fc.record({ kind: fc.constant('symlink' as const), name: fc.constantFrom(...names), target: fc.constantFrom(...links) }),
      fc.record({ kind: fc.constant('hardlink' as const), name: fc.constantFrom(...names), target: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant('whiteout' as const), name: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant('opaque' as const), name: fc.constantFrom('.', ...names) }),
    );
    const toRaw = (e: { kind: string; name: string; mode?: number; target?: string }): RawEntry => {
      switch (e.kind) {
        case 'dir':
          return dir(e.name, e.mode);
        case 'file':
          return file(e.name, 'x\n', { mode: e.mode! });
        case 'symlink':
          return symlink(e.name, e.target!);
        case 'hardlink':
          return hardlink(e.name, e.target!);
        case 'whiteout': {
          const slash = e.name.lastIndexOf('/');
          return file(slash < 0 ? `.wh.${e.name}` : `${e.name.slice(0, slash)}/.wh.${e.name.slice(slash + 1)}`, '');
        }
        default:
          return file(e.name === '.' ? '.wh..wh..opq' : `${e.name}/.wh..wh..opq`, '');
      }
    };
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 8 }), fc.constantFrom<ApplyLayout>('plain', 'overlay'), fc.boolean(), async (entries, layout, planted) => {
        runs++;
        rmSync(target, { recursive: true, force: true });
        if (planted) {
          // An existing target whose own symlinks lead out: the layer may write "through" them.
          mkdirSync(target);
          symlinkSync(OUT, join(target, 's'));
          symlinkSync(`${OUT}/secret`, join(target, 'b'));
        }
        const before = outside();
        const error = await applyLayer(rawTar(entries.map(toRaw)), target, { layout }).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (error !== undefined && !isStrataError(error)) throw error; // a refusal is typed, never an errno
        expect(diffSnapshots(before, outside())).toEqual([]);
      }),
      { numRuns: Number(process.env.STRATA_SWAP_RUNS ?? 300), seed: Number(process.env.STRATA_SEED ?? 12), endOnFailure: true },
    );
    expect(runs).toBeGreaterThan(0);
  });
});
