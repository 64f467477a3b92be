/**
 * strata's merged view and copy-on-write layer against the kernel's overlayfs: random lowers, random
 * operation sequences, the same through both; errors, results, merged views and upper directories must
 * agree. Named regressions (shrunk counterexamples among them) run first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { needs } from './helpers/oracle.js';
import { baseArb, differential, opArb, withNamesNotUtf8, type LayerSpec, type Op } from './helpers/overlay-diff.js';

const RUNS = Number(process.env.STRATA_DIFF_RUNS ?? 40);

const f = (path: string, content = 'lower\n', extra: Partial<{ mode: number; uid: number }> = {}): LayerSpec[number] => ({ kind: 'file', path, content, mode: 0o644, uid: 0, ...extra });
const d = (path: string, opaque = false): LayerSpec[number] => ({ kind: 'dir', path, mode: 0o755, uid: 0, opaque });

/** Named cases: each pins a behaviour, whatever the generator draws. */
const regressions: Array<{ name: string; base: LayerSpec[]; ops: Op[]; trustedOnly?: true }> = [
  { name: 'write into a lower file copies it up', base: [[f('a'), d('d'), f('d/a')]], ops: [{ op: 'appendFile', path: 'd/a', data: 'more\n' }] },
  { name: 'truncate, chmod, chown and utimes of lower files', base: [[f('a', 'hello'), f('b', 'x', { mode: 0o4755 })]], ops: [{ op: 'truncate', path: 'a', length: 2 }, { op: 'chmod', path: 'b', mode: 0o700 }, { op: 'chown', path: 'a', uid: 42, gid: 43 }, { op: 'utimes', path: 'b', time: 1_000_000 }] },
  { name: 'unlink a lower file, then recreate it', base: [[f('a')]], ops: [{ op: 'unlink', path: 'a' }, { op: 'readFile', path: 'a' }, { op: 'writeFile', path: 'a', data: 'new\n' }] },
  { name: 'rmdir of a lower directory, then mkdir at the same path (opaque)', base: [[d('x'), d('d'), f('d/a')]], ops: [{ op: 'rmdir', path: 'x' }, { op: 'mkdir', path: 'x' }, { op: 'rm', path: 'd', recursive: true }, { op: 'mkdir', path: 'd' }, { op: 'readdir', path: 'd' }] },
  { name: 'rm -r of a directory with lower and upper children', base: [[d('d'), f('d/a'), d('d/e'), f('d/e/a')]], ops: [{ op: 'writeFile', path: 'd/n', data: 'new\n' }, { op: 'mkdir', path: 'd/e/n' }, { op: 'rm', path: 'd', recursive: true }] },
  { name: 'rename of files across directories', base: [[f('a'), d('d'), f('d/b'), d('x')]], ops: [{ op: 'rename', path: 'a', to: 'x/n' }, { op: 'rename', path: 'd/b', to: 'a' }] },
  { name: 'mv a t; mv t a of an unchanged lower file', base: [[f('a')]], ops: [{ op: 'rename', path: 'a', to: 'n' }, { op: 'rename', path: 'n', to: 'a' }] },
  { name: 'a lower directory renamed fails with EXDEV', base: [[d('d'), f('d/a')]], ops: [{ op: 'rename', path: 'd', to: 'n' }, { op: 'mkdir', path: 'x' }, { op: 'rename', path: 'x', to: 'n' }] },
  { name: 'a file replaced by a directory and the reverse', base: [[f('a'), d('d')]], ops: [{ op: 'unlink', path: 'a' }, { op: 'mkdir', path: 'a' }, { op: 'rmdir', path: 'd' }, { op: 'writeFile', path: 'd', data: 'file now\n' }] },
  { name: 'a directory deleted in one layer and recreated in the next is opaque', base: [[d('d'), f('d/a')], [{ kind: 'whiteout', path: 'd' }]], ops: [{ op: 'readdir', path: '' }, { op: 'mkdir', path: 'd' }, { op: 'readdir', path: 'd' }] },
  { name: 'symlinks and hardlinks to lower files', base: [[f('a'), d('x')]], ops: [{ op: 'link', path: 'a', to: 'x/n' }, { op: 'symlink', target: '../a', path: 'x/a' }, { op: 'appendFile', path: 'x/a', data: 'via link\n' }, { op: 'readFile', path: 'a' }] },
  { name: 'xattrs on lower entries', base: [[f('a'), d('d')]], ops: [{ op: 'setxattr', path: 'a', name: 'user.k', value: '1' }, { op: 'setxattr', path: 'd', name: 'user.j', value: '2' }] },
  {
    name: 'user xattr on a lower symlink is refused before any copy-up (shrunk counterexample)',
    base: [[d('x'), { kind: 'symlink', path: 'x/a', target: 'a' }]],
    ops: [{ op: 'setxattr', path: 'x/a', name: 'user.k', value: '1' }, { op: 'symlink', target: 'a', path: 'a' }],
  },
  { name: 'link of a directory onto an existing name is EEXIST before EPERM (shrunk counterexample)', base: [[f('a'), d('d'), d('d/e')]], ops: [{ op: 'link', path: 'd/e', to: 'a' }, { op: 'link', path: 'd/e', to: 'n' }] },
  { name: 'renaming a lower directory onto a non-empty one is EXDEV before ENOTEMPTY (shrunk counterexample)', base: [[d('d'), f('d/a'), d('x'), f('x/a')]], ops: [{ op: 'rename', path: 'd', to: 'x' }] },
  { name: 'renaming a file onto its own ancestor is ENOTEMPTY (shrunk counterexample)', base: [[d('d'), d('d/e'), f('d/e/a')]], ops: [{ op: 'rename', path: 'd/e/a', to: 'd' }, { op: 'rename', path: 'd', to: 'd/e/n' }] },
  {
    name: 'a climbing symlink moved to the top level is out of scope, and the ops after it still agree (shrunk counterexample)',
    base: [[d('a'), d('d'), f('d/a', ''), d('x'), { kind: 'symlink', path: 'x/a', target: '../d' }]],
    ops: [{ op: 'rename', path: 'x/a', to: 'n' }, { op: 'truncate', path: 'n', length: 0 }, { op: 'setxattr', path: 'a', name: 'user.k', value: '1' }],
  },
  {
    name: 'renaming one hardlinked name onto another does nothing, and succeeds (shrunk counterexample)',
    base: [[{ kind: 'symlink', path: 'a', target: 'a' }, { kind: 'symlink', path: 'b', target: 'a' }, d('d'), f('d/b', '')]],
    ops: [{ op: 'rm', path: 'd', recursive: true }, { op: 'link', path: 'b', to: 'd' }, { op: 'rename', path: 'd', to: 'b' }, { op: 'writeFile', path: 'a', data: 'new\n' }, { op: 'readdir', path: '' }],
    trustedOnly: true, // with userxattr the kernel answers this rename with ESTALE, a quirk not to copy
  },
  { name: 'opaque lower directory hides the layer below', base: [[d('d'), f('d/a'), f('d/b')], [d('d', true), f('d/e', 'upper')]], ops: [{ op: 'readdir', path: 'd' }, { op: 'unlink', path: 'd/e' }, { op: 'readdir', path: 'd' }] },
];

describe.skipIf(!needs('root', 'overlay'))('a deliberate difference from the kernel', () => {
  it('a redundant whiteout in a directory the kernel does not merge: the kernel lists it, strata does not', async () => {
    const { buildStack } = await import('./helpers/overlay-diff.js');
    const { execFileSync } = await import('node:child_process');
    const { mkdirSync, readdirSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { HostLayer, WritableLayer } = await import('@strata/core');
    // Layer 2 replaces the file x with a directory holding a whiteout of x/a: there is nothing below to hide.
    const stack = await buildStack([[f('x')], [d('x'), { kind: 'whiteout', path: 'x/a' }]], 'trusted');
    const mount = join(stack.dir, 'merged');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...stack.lowerDirs].reverse().join(':')}`, mount]);
    try {
      expect(readdirSync(join(mount, 'x'))).toEqual(['a']); // listed ...
      expect(() => readdirSync(join(mount, 'x', 'a'))).toThrow(expect.objectContaining({ code: 'ENOENT' })); // ... yet absent
      mkdirSync(join(stack.dir, 'upper'));
      const layer = new WritableLayer(stack.lowerDirs.map((dir) => new HostLayer(dir)), join(stack.dir, 'upper'));
      expect(await layer.readdir('/x')).toEqual([]);
    } finally {
      execFileSync('umount', [mount]);
      rmSync(stack.dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!needs('root', 'overlay'))('WritableLayer against the kernel overlayfs', () => {
  // Gzip tarballs are read from a rewritten copy (TarLayer's spool): the regressions and random sequences once, trusted only.
  for (const lowers of ['dirs', 'tars', 'gzip tars'] as const) {
    for (const namespace of ['trusted', 'user'] as const) {
      if (lowers === 'gzip tars' && namespace === 'user') continue;
      describe(`lowers as ${lowers}, ${namespace}.overlay.* markers`, () => {
        for (const { name, base, ops, trustedOnly } of regressions) {
          if (trustedOnly && namespace !== 'trusted') continue;
          it(name, async () => {
            expect(await differential(base, ops, { lowers, namespace })).toEqual({ opMismatches: [], mergedMismatches: [], upperMismatches: [] });
          });
        }
        if (namespace === 'trusted') {
          it('random operation sequences agree', async () => {
            await fc.assert(
              fc.asyncProperty(baseArb, fc.array(opArb, { minLength: 1, maxLength: 12 }), async (base, ops) => {
                const result = await differential(base, ops, { lowers, namespace });
                expect(result).toEqual({ opMismatches: [], mergedMismatches: [], upperMismatches: [] });
              }),
              { numRuns: RUNS },
            );
          });
          it('the named cases and random sequences agree on names that are not UTF-8 (bytes only)', async () => {
            const clean = { opMismatches: [], mergedMismatches: [], upperMismatches: [] };
            for (const { name, base, ops } of regressions) {
              const bytes = withNamesNotUtf8(base, ops);
              expect({ name, ...(await differential(bytes.base, bytes.ops, { lowers, namespace })) }).toEqual({ name, ...clean });
            }
            await fc.assert(
              fc.asyncProperty(baseArb, fc.array(opArb, { minLength: 1, maxLength: 12 }), async (base, ops) => {
                const bytes = withNamesNotUtf8(base, ops);
                expect(await differential(bytes.base, bytes.ops, { lowers, namespace })).toEqual(clean);
              }),
              { numRuns: Math.ceil(RUNS / 4) },
            );
          });
        }
      });
    }
  }
});
