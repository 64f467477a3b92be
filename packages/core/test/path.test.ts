import { describe, expect, it } from 'vitest';
import { cleanEntryName, cleanLayerPath, compareTarOrder } from '../src/path.js';

describe('layer paths', () => {
  it('cleans ./ prefixes, doubled and trailing slashes', () => {
    expect(['./', '.', './a', 'a//b/', './a/./b', 'a/b/.'].map(cleanLayerPath)).toEqual(['.', '.', 'a', 'a/b', 'a/b', 'a/b']);
  });

  it('passes clean names through, dots inside names included', () => {
    const names = ['a', 'a/b', '.a', 'a/..b', '...', 'a/.b/c', 'b..', 'ü/名'];
    expect(names.map(cleanLayerPath)).toEqual(names);
    expect(['a/b/', '.a/', '.../'].map(cleanLayerPath)).toEqual(['a/b', '.a', '...']);
  });

  it('refuses .. anywhere and absolute names', () => {
    for (const bad of ['..', '../a', 'a/../b', 'a/..', '/etc', '../', 'a/../', '//x']) expect(() => cleanLayerPath(bad)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
  });

  it('reads a tar entry name with a leading / from the layer root, as containerd and Docker do, and still refuses ..', () => {
    expect(['/', '//', '/usr/', '/usr/bin/python', '//x/./y', 'a/b', './c'].map(cleanEntryName)).toEqual(['.', '.', 'usr', 'usr/bin/python', 'x/y', 'a/b', 'c']);
    for (const bad of ['/..', '/../etc', '//a/../../b', '../a']) expect(() => cleanEntryName(bad)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
  });

  it('orders parents before children and a subtree before the next sibling', () => {
    const paths = ['a.b', 'a/b', 'a', 'a/b/c', 'b', 'a-'];
    expect([...paths].sort(compareTarOrder)).toEqual(['a', 'a/b', 'a/b/c', 'a-', 'a.b', 'b']);
  });
});
