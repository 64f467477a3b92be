/**
 * Variable expansion against the Dockerfile frontend's own expectations: the cases below restate what
 * BuildKit's shell lexer tests (frontend/dockerfile/shell) expect of `ProcessWord`, `ProcessWords` and the
 * 1.7 pattern modifiers, so strata expands a public Dockerfile's arguments as `docker build` does.
 */
import { describe, expect, it } from 'vitest';
import { processWord, processWords } from '../src/index.js';

const ERROR = Symbol('error');
type Expect = string | typeof ERROR;

function check(cases: [string, Expect][], env: ReadonlyMap<string, string>): void {
  checkEach(cases.map(([text, want]) => [text, env, want]));
}

/** Each case with variables of its own. */
function checkEach(cases: [string, ReadonlyMap<string, string> | Record<string, string>, Expect][]): void {
  for (const [text, vars, want] of cases) {
    const env = vars instanceof Map ? vars : new Map(Object.entries(vars));
    if (want === ERROR) expect(() => processWord(text, env), text).toThrow();
    else expect(processWord(text, env), text).toBe(want);
  }
}

describe('variable expansion as BuildKit does it', () => {
  const env = new Map([
    ['PWD', '/home'],
    ['SHELL', 'bash'],
    ['KOREAN', '한국어'],
    ['NULL', ''],
  ]);

  it('quotes and escapes', () => {
    check(
      [
        ['hello', 'hello'],
        ["he'll'o", 'hello'],
        ["he'llo", ERROR],
        ["he\\'llo", "he'llo"],
        ["he\\\\'llo", ERROR],
        ['abc\\tdef', 'abctdef'],
        ['"abc\\tdef"', 'abc\\tdef'],
        ['"abc\\\\tdef"', 'abc\\tdef'],
        ["'abc\\tdef'", 'abc\\tdef'],
        ['hello\\', 'hello'],
        ['hello\\\\', 'hello\\'],
        ['"hello', ERROR],
        ['"hello\\"', ERROR],
        ['"hel\'lo"', "hel'lo"],
        ["'hello", ERROR],
        ["'hello\\'", 'hello\\'],
        ['"\'\'"', "''"],
        ['안\'녕\'하세요', '안녕하세요'],
        ['안녕\\t하세요', '안녕t하세요'],
      ],
      env,
    );
  });

  it('names, positional and special parameters', () => {
    check(
      [
        ['$.', '$.'],
        ['he$1x', 'hex'],
        ['he$.x', 'he$.x'],
        ['he$pwd.', 'he.'],
        ['he$PWD', 'he/home'],
        ['he\\$PWD', 'he$PWD'],
        ['he\\\\$PWD', 'he\\/home'],
        ['"he\\$PWD"', 'he$PWD'],
        ['"he\\\\$PWD"', 'he\\/home'],
        ["'he\\$PWD'", 'he\\$PWD'],
        ['\\${}aaa', '${}aaa'],
        ['${}', ERROR],
        ['he${}xx', ERROR],
        ['he${hi}xx', 'hexx'],
        ['he${PWD}', 'he/home'],
        ['he${.}', ERROR],
        ['$KOREAN', '한국어'],
        ['안녕$KOREAN', '안녕한국어'],
        ['${{aaa}', ERROR],
        ['${aaa}}', '}'],
        ['${aaa', ERROR],
        ['${:}', ERROR],
        ['${:-bbb}', ERROR],
        ['$999aaa', 'aaa'],
        ['${999:-bbb}aaa', 'bbbaaa'],
        ['${001:+bbb}aaa', 'aaa'],
        ['$@@@', '@@'],
        ['${@:-bbb}aaa', 'bbbaaa'],
        ['$*', ''],
        ['${#}', ''],
        ['${?:-bbb}', 'bbb'],
        ['$-', ''],
        ['$$', ''],
        ['${!:+bbb}', ''],
        ['$0', ''],
        ['${0:-bbb}', 'bbb'],
      ],
      env,
    );
  });

  it('-, +, ? with and without the colon', () => {
    check(
      [
        ['he${XXX:-000}xx', 'he000xx'],
        ['he${PWD:-000}xx', 'he/homexx'],
        ['he${XXX:-$PWD}xx', 'he/homexx'],
        ['he${XXX:-${PWD:-yyy}}xx', 'he/homexx'],
        ['he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'],
        ['he${XXX:YYY}', ERROR],
        ['he${XXX?}', ERROR],
        ['he${XXX:?}', ERROR],
        ['he${PWD?}', 'he/home'],
        ['he${PWD:?}', 'he/home'],
        ['he${NULL?}', 'he'],
        ['he${NULL:?}', ERROR],
        ['he${XXX:+${PWD}}xx', 'hexx'],
        ['he${PWD:+${SHELL}}xx', 'hebashxx'],
        ['he${PWD:+000}xx', 'he000xx'],
        ['he${PWD', ERROR],
        ['he${PWD:=000}xx', ERROR],
        ['he${PWD:+${PWD}:}xx', 'he/home:xx'],
        ['he${XXX:-\\$PWD:}xx', 'he$PWD:xx'],
        ['he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'],
        ['${aaa:-bbb}}', 'bbb}'],
        ['${aaa:-bbb', ERROR],
        ['${aaa:-${bbb:-ccc}}', 'ccc'],
        ['${aaa:-bbb ${foo}', ERROR],
        ['${aaa:-bbb {foo}', 'bbb {foo'],
      ],
      env,
    );
    const some = new Map([
      ['FOO', 'xxx'],
      ['BAR', ''],
    ]);
    check(
      [
        ['${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}', 'xxx  ccc'],
        ['${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}', 'xxx bbb ccc'],
        ['${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}', 'aaa bbb '],
        ['${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}', 'aaa  '],
        ['${FOO?aaa}', 'xxx'],
        ['${BAR?bbb}', ''],
        ['${BAZ?ccc}', ERROR],
        ['${BAR:?bbb}', ERROR],
        ['${FOO=aaa}', ERROR],
        ['${FOO=}', ERROR],
      ],
      some,
    );
    const args = new Map([['ARG', 'x']]);
    expect(() => processWord('${VAR:?message here$ARG}', new Map([...args, ['VAR', '']]))).toThrow('VAR: message herex');
    expect(() => processWord('${VAR?message here$ARG}', args)).toThrow('VAR: message herex');
    expect(processWord('${VAR?message here$ARG}', new Map([...args, ['VAR', '']]))).toBe('');
    expect(() => processWord('${VAR?}', args)).toThrow('VAR: is not allowed to be unset');
    expect(() => processWord('${VAR:?}', new Map([['VAR', '']]))).toThrow('VAR: is not allowed to be empty');
  });

  it('trims prefixes and suffixes by pattern (#, ##, %, %%)', () => {
    const cases: [string, Record<string, string>, Expect][] = [
      ['${FOO#()[]{\\}^$.\\*\\?|\\\\}', { FOO: '()[]{}^$.*?|\\x' }, 'x'],
      ['${FOO%%\\**}', { FOO: 'xx**' }, 'xx'],
      ['${FOO#*x*y}', { FOO: 'xxyy' }, 'y'],
      ['${FOO#*}', { FOO: 'xxyy' }, 'xxyy'],
      ['${FOO#$BAR}', { FOO: 'xxyy', BAR: 'x' }, 'xyy'],
      ['${FOO#$BAR}', { FOO: 'xxyy', BAR: '' }, 'xxyy'],
      ['${FOO#}', { FOO: 'xxyy' }, 'xxyy'],
      ['${FOO##*x}', { FOO: 'xxyy' }, 'yy'],
      ['${FOO##}', { FOO: 'xxyy' }, 'xxyy'],
      ['${FOO#?\\?}', { FOO: '???y' }, '?y'],
      ['${ABC:-.}${FOO%x}${ABC:-.}', { FOO: 'xxyy' }, '.xxyy.'],
      ['${FOO%%\\**\\*}', { FOO: 'a***yy*' }, 'a'],
      ['${FOO%}', { FOO: 'xxyy' }, 'xxyy'],
      ['${FOO%%$BAR}', { FOO: 'xxyy', BAR: '' }, 'xxyy'],
      ['${FOO:#}', {}, ERROR],
      ['${FOO:##}', {}, ERROR],
      ['${FOO:%}', {}, ERROR],
      ['${FOO:%%}', {}, ERROR],
      // What Dockerfiles use them for.
      ['${VERSION#v}', { VERSION: 'v1.2.3' }, '1.2.3'],
      ['${VERSION%.*}', { VERSION: '1.2.3' }, '1.2'],
      ['${VERSION%%.*}', { VERSION: '1.2.3' }, '1'],
      ['${IMAGE##*/}', { IMAGE: 'docker.io/library/alpine' }, 'alpine'],
      ['${UNSET#x}', {}, ''],
      ['${FOO#\\x}', { FOO: 'x' }, ERROR], // \x is no escape of a pattern
    ];
    checkEach(cases);
  });

  it('replaces by pattern (/, //)', () => {
    const cases: [string, Record<string, string>, Expect][] = [
      ['${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}', { FOO: '/foo*/*/*.txt', NEEDLE: '\\*/' }, '/foo.*/*.txt - /foo..*.txt'],
      ['${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}', { FOO: '/tmp/tmp/bar.txt', NEEDLE: '/tmp' }, '/tmp/bar.txt - /bar.txt'],
      ['${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}', { FOO: '/a/foo/b/c.txt', NEEDLE: '/?/', REPLACEMENT: '/' }, '/foo/b/c.txt - /foo/c.txt'],
      ['${FOO/$NEEDLE/$REPLACEMENT}', { FOO: 'http://google.de', NEEDLE: 'http://', REPLACEMENT: 'https://' }, 'https://google.de'],
      ['${FOO//\\//\\/}', { FOO: '/tmp/foo.txt' }, '\\/tmp\\/foo.txt'],
      ['${FOO/$BAR/ww}', { FOO: 'xxyy', BAR: '' }, 'wwxxyy'],
      ['${FOO//ww}', { FOO: 'xxyy' }, ERROR],
      ['${FOO//}', { FOO: 'xxyy' }, ERROR],
      ['${FOO///}', { FOO: 'xxyy' }, 'xxyy'],
      ['${FOO///}', {}, ''],
      ['${FOO/$/x}', { FOO: 'a$b' }, 'axb'], // a literal $ in the pattern, not an anchor
      ['${FOO//./-}', { FOO: '1.2.3' }, '1-2-3'],
    ];
    checkEach(cases);
  });

  it('splits words as ProcessWords does', () => {
    const env = new Map([
      ['hi', 'hi'],
      ['space', 'abc  def'],
      ['leading', '  ab c'],
      ['trailing', 'ab c   '],
    ]);
    const cases: [string, string[] | typeof ERROR][] = [
      ['hello', ['hello']],
      ['hello${hi}bye', ['hellohibye']],
      ['hello${space}bye', ['helloabc', 'defbye']],
      ['hello"${space}"bye', ['helloabc  defbye']],
      ['hello "${space}"bye', ['hello', 'abc  defbye']],
      ['hello${leading}def', ['hello', 'ab', 'cdef']],
      ['hello"${leading}" def', ['hello  ab c', 'def']],
      ['hello${leading}', ['hello', 'ab', 'c']],
      ['hello${trailing}', ['helloab', 'c']],
      ['hello${trailing}d', ['helloab', 'c', 'd']],
      ['hello"${trailing}"d', ['helloab c   d']],
      ['hel"lo${trailing}"', ['helloab c   ']],
      ['hello" there  "', ['hello there  ']],
      ['hello there     ', ['hello', 'there']],
      ['hello\\ there', ['hello there']],
      ['hello" there', ERROR],
      ['hello\\" there', ['hello"', 'there']],
      ['hello"\\\\there"', ['hello\\there']],
      ['hello"\\there"', ['hello\\there']],
      ["hello'\\\\there'", ['hello\\\\there']],
      ["hello'$there'", ['hello$there']],
    ];
    for (const [text, want] of cases) {
      if (want === ERROR) expect(() => processWords(text, env), text).toThrow();
      else expect(processWords(text, env), text).toEqual(want);
    }
  });
});
