/**
 * The one symlink resolver, through its two sets of rules: apply's (a layer written into a host directory)
 * and the container view's (WritableLayer). The table is where the two uses must differ, and why.
 */
import { describe, expect, it } from 'vitest';
import { resolvePath, type Lookup, type LookupResult, type ResolveRules } from '../src/resolve.js';

/** A tree of directories, files and symlinks, looked up by (directory, name). */
function tree(nodes: Record<string, 'dir' | 'file' | string>): Lookup {
  return (dir, name): LookupResult => {
    const path = dir === '.' ? name : `${dir}/${name}`;
    const node = nodes[path];
    if (node === undefined) return 'missing';
    if (node === 'dir') return 'directory';
    if (node === 'file') return 'other';
    return { symlink: node };
  };
}

const fail = (failure: string) => Object.assign(new Error(failure), { code: failure });
const apply: ResolveRules = { followLast: false, aboveRoot: 'refuse', missingParent: 'lexical', fileParent: 'lexical', fail };
const container = (followLast: boolean, allowMissing = false): ResolveRules => ({
  followLast,
  aboveRoot: 'clamp',
  missingParent: allowMissing ? 'lexical' : 'error',
  fileParent: 'error',
  fail,
});

const root = tree({
  usr: 'dir',
  'usr/lib': 'dir',
  'usr/lib/libc.so': 'file',
  lib: 'usr/lib',
  abs: '/usr',
  up: '../../..',
  loop: 'loop',
  f: 'file',
  'usr/link-to-lib': 'lib',
  'usr/parent-link': '..',
});

/** [path, apply's answer, the container's (lstat-like) answer, why they differ or agree]. */
const table: Array<[string, string, string, string]> = [
  ['lib/libc.so', 'usr/lib/libc.so', 'usr/lib/libc.so', 'a relative link in a parent is followed by both'],
  ['abs/lib/libc.so', 'usr/lib/libc.so', 'usr/lib/libc.so', 'an absolute link restarts at the root, never the host root'],
  ['lib', 'lib', 'lib', 'the last component is not followed by apply (it replaces what stands there), nor by lstat'],
  ['up/x', 'above-root', 'x', 'a climb above the root: a layer that does it is hostile (apply refuses); a process chrooted there stays at the root'],
  ['../x', 'above-root', 'x', 'likewise for a literal ..'],
  ['usr/parent-link/usr/lib', 'usr/lib', 'usr/lib', '.. inside the root is fine for both'],
  ['loop/x', 'loop', 'loop', 'more than 40 symlinks: refused by apply, ELOOP for the container'],
  ['missing/x', 'missing/x', 'missing', 'a missing parent: apply creates it; the container says ENOENT'],
  ['f/x', 'f/x', 'not-directory', 'a file as a parent: apply fails when it places the entry; the container says ENOTDIR'],
  ['usr/link-to-lib/libc.so', 'usr/lib/libc.so', 'usr/lib/libc.so', 'links resolve relative to their own directory'],
];

function attempt(path: string, rules: ResolveRules): string {
  try {
    return resolvePath(path, root, rules);
  } catch (error) {
    return (error as { code: string }).code;
  }
}

describe('resolvePath: apply and container rules', () => {
  for (const [path, forApply, forContainer, why] of table) {
    it(`${path}: ${why}`, () => {
      expect(attempt(path, apply)).toBe(forApply);
      expect(attempt(path, container(false))).toBe(forContainer);
    });
  }

  it('with followLast a final symlink is followed (stat), without it not (lstat)', () => {
    expect(attempt('lib', container(true))).toBe('usr/lib');
    expect(attempt('lib', container(false))).toBe('lib');
  });

  it('mkdir -p: missing parents resolve lexically, and .. back out of them looks things up again', () => {
    expect(attempt('new/a/b', container(false, true))).toBe('new/a/b');
    expect(attempt('new/../lib/x', container(true, true))).toBe('usr/lib/x');
  });

  it('costs one lookup per component and per hop, not a rescan of what was resolved', () => {
    let lookups = 0;
    const deep = Array.from({ length: 2000 }, (_, i) => `d${i}`).join('/');
    resolvePath(`${deep}/x`, () => {
      lookups++;
      return 'directory';
    }, apply);
    expect(lookups).toBe(2000);
  });
});
