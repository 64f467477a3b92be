import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTree } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'strata-remove-tree-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('removeTree', () => {
  it('removes a tree whole, names that are not UTF-8 and unreadable directories included, never following a symlink', () => {
    const outside = join(work, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep'), 'kept');
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'a/b/c'), { recursive: true });
    writeFileSync(join(tree, 'a/b/c/f'), 'x');
    writeFileSync(Buffer.from(`${tree}/a/caf\xe9`, 'latin1'), 'latin-1');
    symlinkSync(outside, join(tree, 'a/to-outside'));
    symlinkSync(outside, join(tree, 'link-dir'));
    mkdirSync(join(tree, 'work/work'), { recursive: true });
    if (process.getuid?.() === 0) chmodSync(join(tree, 'work/work'), 0); // as overlayfs leaves its work directory (only root removes below it)
    removeTree(tree);
    expect(existsSync(tree)).toBe(false);
    expect(readFileSync(join(outside, 'keep'), 'utf8')).toBe('kept');
  });

  it('takes an absent path, or one under a file, as done; removes a file or a symlink itself', () => {
    removeTree(join(work, 'absent'));
    removeTree(join(work, 'absent/below'));
    writeFileSync(join(work, 'file'), 'x');
    removeTree(join(work, 'file/below'));
    removeTree(join(work, 'file'));
    expect(existsSync(join(work, 'file'))).toBe(false);
    mkdirSync(join(work, 'dir'));
    symlinkSync(join(work, 'dir'), join(work, 'link'));
    removeTree(join(work, 'link'));
    expect(existsSync(join(work, 'dir'))).toBe(true);
  });

  it('refuses a path that names no entry', () => {
    expect(() => removeTree('/')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => removeTree(`${work}/..`)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
