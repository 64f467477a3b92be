/**
 * `--call=targets` and `--call=outline` against what BuildKit's own tests expect of them
 * (frontend/dockerfile/dockerfile_targets_test.go, dockerfile_outline_test.go): the same Dockerfiles, the
 * same names, values, descriptions, lines and order.
 */
import { describe, expect, it } from 'vitest';
import { listTargets, outlineTarget } from '../src/subrequests.js';

const line = (item: { location: { ranges: readonly { start: { line: number } }[] } }) => item.location.ranges[0]!.start.line;

describe('subrequests', () => {
  it('lists the stages with their bases, doc comments, lines and the default (testTargetsList)', () => {
    const text = '\n# build defines stage for compiling the binary\nFROM alpine AS build\nRUN true\n\nFROM busybox as second\nRUN false\n\nFROM alpine\nRUN false\n\n# binary returns the compiled binary\nFROM second AS binary\n';
    const list = listTargets(text);
    expect(list.source).toBe(text);
    expect(list.targets.map((t) => [t.name, t.base, t.description, t.default, line(t)])).toEqual([
      ['build', 'alpine', 'defines stage for compiling the binary', false, 3],
      ['second', 'busybox', '', false, 6],
      ['', 'alpine', '', false, 9],
      ['binary', 'second', 'returns the compiled binary', true, 13],
    ]);
  });

  it('reads a doc comment past blank lines, not past an empty # or an instruction, nor the directives, and by its name only', () => {
    const text = '# syntax=docker/dockerfile:1\n# build is read, the directive above is not\nFROM a AS build\n# two is cut off by the empty comment\n#\nFROM b AS two\n# three is the third\n\n# something else\nFROM c AS three\n# four: not its name and a space\nRUN true\nFROM d AS four\n';
    expect(listTargets(text).targets.map((t) => t.description)).toEqual(['is read, the directive above is not', '', 'is the third', '']);
  });

  it("outlines a target's build args: the globals its FROM lines read, every ARG its stages declare, values and descriptions (testOutlineArgs)", () => {
    const text = [
      '',
      'ARG inherited=box',
      'ARG inherited2=box2',
      'ARG unused=abc${inherited2}',
      '# sfx is a suffix',
      'ARG sfx="usy${inherited}"',
      '',
      'FROM b${sfx} AS first',
      '# this is not assigned to anything',
      'ARG FOO=123',
      '# BAR is a number',
      'ARG BAR=456',
      'RUN true',
      '',
      'FROM alpine${unused} AS second',
      'ARG BAZ',
      'RUN true',
      '',
      'FROM scratch AS third',
      'ARG ABC=a',
      '# check=skip=all',
      'ARG password',
      '# alternate_password will show up in the outline',
      '# check=skip=all',
      'ARG alternate_password',
      '',
      '# target defines build target',
      'FROM third AS target',
      'COPY --from=first /etc/passwd /',
      '',
      'FROM second',
      '',
    ].join('\n');
    const outline = outlineTarget(text, { target: 'target', buildArgs: { BAR: '678' } });
    expect([outline.name, outline.description, outline.source]).toEqual(['target', 'defines build target', text]);
    expect(outline.args.map((a) => [a.name, a.value, a.description, line(a)])).toEqual([
      ['inherited', 'box', '', 2],
      ['sfx', 'usybox', 'is a suffix', 6],
      ['FOO', '123', '', 10],
      ['BAR', '678', 'is a number', 12],
      ['ABC', 'a', '', 20],
      ['password', '', '', 22],
      ['alternate_password', '', 'will show up in the outline', 25],
    ]);
  });

  it("outlines the secrets and SSH agents of the target's stages only, ids expanded (testOutlineSecrets)", () => {
    const text = [
      '',
      'FROM busybox AS first',
      'RUN --mount=type=secret,target=/etc/passwd,required=true --mount=type=ssh true',
      '',
      'FROM alpine AS second',
      'RUN --mount=type=secret,id=unused --mount=type=ssh,id=ssh2 true',
      '',
      'FROM scratch AS third',
      'ARG BAR',
      'RUN --mount=type=secret,id=second${BAR} true',
      '',
      'FROM third AS target',
      'COPY --from=first /foo /',
      'RUN --mount=type=ssh,id=ssh3,required true',
      '',
      'FROM second',
      '',
    ].join('\n');
    const outline = outlineTarget(text, { target: 'target', buildArgs: { BAR: '678' } });
    expect(outline.secrets.map((s) => [s.name, s.required, line(s)])).toEqual([
      ['passwd', true, 3],
      ['second678', false, 10],
    ]);
    expect(outline.ssh.map((s) => [s.name, s.required, line(s)])).toEqual([
      ['default', false, 3],
      ['ssh3', true, 14],
    ]);
  });

  it('follows what a global default reads, through redeclarations, to the args used (testOutlineRecursiveArgs)', () => {
    const text = ['', 'ARG FOO=123', 'ARG ABC=abc', 'ARG DEF=def', 'ARG FOO=${FOO}${ABC}', 'ARG BAR=${FOO}456', 'ARG FOO=${FOO}456${BAR}', 'FROM scratch', 'ARG FOO', 'ARG INFOO=123', 'ARG INBAR=${INFOO}456', 'ARG INFOO=${INFOO}456${INBAR}', ''].join('\n');
    const outline = outlineTarget(text);
    expect(outline.args.map((a) => [a.name, a.value])).toEqual([
      ['ABC', 'abc'],
      ['BAR', '123abc456'],
      ['FOO', '123abc456123abc456'],
      ['INBAR', '123456'],
      ['INFOO', '123456123456'],
    ]);
  });

  it('refuses a target the Dockerfile does not have, with a suggestion, and a malformed mount with its line', () => {
    expect(() => outlineTarget('FROM scratch AS build\n', { target: 'biuld' })).toThrow(/target stage "biuld" is not in the Dockerfile.*build/);
    expect(() => outlineTarget('FROM scratch\nRUN --mount=type=bogus true\n')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^Dockerfile line 2: .*bogus/) }));
  });
});
