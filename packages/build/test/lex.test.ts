import { describe, expect, it } from 'vitest';
import { contextFilter, keyValues, processWord, processWords, splitRaw } from '../src/index.js';

const env = new Map([
  ['A', '1'],
  ['SPACED', 'x y'],
  ['EMPTY', ''],
]);

describe("Docker's word processing", () => {
  it('expands, removes quotes and honours escapes as Docker does', () => {
    const cases: [string, string][] = [
      ['$A', '1'],
      ['${A}b', '1b'],
      ['$Ab', ''], // the name is Ab
      ['${UNSET:-d e}', 'd e'],
      ['${EMPTY:-d}', 'd'],
      ['${A:-d}', '1'],
      ['${A:+alt}', 'alt'],
      ['${UNSET:+alt}', ''],
      ['${UNSET:-$A}', '1'],
      ["'$A'", '$A'],
      ['"$A"', '1'],
      ['"a\\"b"', 'a"b'],
      ['"a\\nb"', 'a\\nb'], // inside double quotes only ", $ and the escape are escaped
      ['\\$A', '$A'],
      ['a\\ b', 'a b'],
      ['$', '$'],
      ['a$', 'a$'],
      ['a$1b', 'ab'],
      ['$-q', 'q'], // $- is a special parameter, never set in a build
      ['$.q', '$.q'],
      ['', ''],
    ];
    for (const [text, want] of cases) expect(processWord(text, env), text).toBe(want);
  });

  it('splits words on unquoted whitespace, a variable’s included', () => {
    expect(processWords('a "b c" $SPACED "$SPACED" \'d e\'', env)).toEqual(['a', 'b c', 'x', 'y', 'x y', 'd e']);
    expect(processWords('  ', env)).toEqual([]);
    expect(processWords('""', env)).toEqual(['']);
  });

  it('takes another escape character by directive', () => {
    expect(processWord('C:\\path`$A', env, '`')).toBe('C:\\path$A');
  });

  it('splits key=value lists keeping quotes for later, and reads the legacy form', () => {
    expect(splitRaw('A=1 B="x y" C=it\\\'s D=\'q r\'')).toEqual(['A=1', 'B="x y"', "C=it\\'s", "D='q r'"]);
    expect(keyValues('A=1 B="x y"', '\\', true)).toEqual([
      ['A', '1'],
      ['B', '"x y"'],
    ]);
    expect(keyValues('KEY value with  spaces', '\\', true)).toEqual([['KEY', 'value with  spaces']]);
    expect(keyValues('NAME OTHER=1', '\\', false)).toEqual([
      ['NAME', undefined],
      ['OTHER', '1'],
    ]);
    expect(() => keyValues('=x', '\\', true)).toThrow(/no name/);
    expect(() => processWord('"open', env)).toThrow(/unterminated/);
  });
});

describe('.dockerignore', () => {
  it("applies Docker's rules: anchored patterns, **, exceptions, the last match winning", () => {
    const ignored = contextFilter('# comment\n*.log\n**/tmp\nbuild/\n!build/keep.txt\nsecret*\n!secret.pub\n');
    expect(ignored('a.log')).toBe(true);
    expect(ignored('sub/a.log')).toBe(false); // *.log is anchored at the root
    expect(ignored('x/y/tmp')).toBe(true);
    expect(ignored('build/out.o')).toBe(true);
    expect(ignored('build/keep.txt')).toBe(false);
    expect(ignored('secret.key')).toBe(true);
    expect(ignored('secret.pub')).toBe(false);
    expect(ignored('src/main.ts')).toBe(false);
  });
});
