import { describe, expect, it } from 'vitest';
import { CreatedPaths } from '../src/apply/created-paths.js';

describe('what an apply created, by directory', () => {
  it('answers for any path, whichever directory was asked about last', () => {
    const made = new CreatedPaths<string>();
    made.set('a', 'directory');
    made.set('a/f', 'other');
    made.set('b', 'symlink');
    made.set('a/g', 'other');
    expect(['a', 'a/f', 'a/g', 'b', 'a/h', 'c', 'c/d'].map((p) => made.get(p))).toEqual(['directory', 'other', 'other', 'symlink', undefined, undefined, undefined]);
    expect(made.get('a/f')).toBe('other');
    made.set('a/f', 'directory');
    expect(made.get('a/f')).toBe('directory');
  });

  it('forgets a removed file alone, and a removed directory with everything below it', () => {
    const made = new CreatedPaths<string>();
    for (const p of ['a', 'a/b', 'a/b/c', 'a/b/c/d', 'a/bc', 'a/bc/e', 'a/x']) made.set(p, p.endsWith('d') || p.endsWith('e') || p.endsWith('x') ? 'other' : 'directory');
    made.delete('a/x', false);
    expect(made.get('a/x')).toBeUndefined();
    expect(made.get('a/b/c/d')).toBe('other'); // the last directory asked about is a/b/c
    made.delete('a/b', true);
    expect(['a/b', 'a/b/c', 'a/b/c/d'].map((p) => made.get(p))).toEqual([undefined, undefined, undefined]);
    // A sibling whose name starts with the removed one's stays.
    expect(['a', 'a/bc', 'a/bc/e'].map((p) => made.get(p))).toEqual(['directory', 'directory', 'other']);
    // Made again after the removal: only what is made anew is there.
    made.set('a/b', 'directory');
    expect([made.get('a/b'), made.get('a/b/c')]).toEqual(['directory', undefined]);
  });
});
