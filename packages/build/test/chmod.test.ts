import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseChmod } from '../src/chmod.js';

/**
 * Modes to start from, without the special bits, where GNU chmod and BSD's setmode (which BuildKit's copy
 * follows) part: GNU keeps a directory's set-ID bits unless told, and clears the sticky bit on `o=`.
 */
const START = [0o644, 0o755, 0o600, 0o700, 0o000, 0o124, 0o666, 0o751, 0o640, 0o777];
const SYMBOLIC = ['+x', 'u=rwX,go=rX', 'g=u', 'go-w', 'a+r', 'u=rwx,go=u-w', 'go=', '=r', 'a-x', 'o=g', '+X', 'a+X', 'ug+x', 'u+rw,g-w,o=', 'u+rw,g+r,o-x,o+w', 'u=rw,g=r,o=r', 'o-rwx', '-w,+X', 'a=', 'u=g,g=o', 'g+w,o=u', '=rwx'];

describe('--chmod', () => {
  it('changes modes as chmod(1) does with umask 0 (GNU chmod on real files and directories as the oracle)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-chmod-'));
    try {
      // One shell for every case: each file or directory made with its start mode, then chmod'ed, then listed.
      const cases = START.flatMap((start) => SYMBOLIC.flatMap((text) => [false, true].map((directory) => ({ start, text, directory }))));
      const script = [
        'umask 0',
        ...cases.map(({ start, text, directory }, i) => `${directory ? 'mkdir' : 'touch'} ${i} && chmod ${start.toString(8)} ${i} && chmod -- '${text}' ${i}`),
        `stat -c '%n %a' ${cases.map((_, i) => i).join(' ')}`,
      ].join('\n');
      const modes = new Map(
        execFileSync('sh', ['-c', script], { cwd: dir })
          .toString()
          .trim()
          .split('\n')
          .map((line) => line.split(' ').map((v, k) => (k === 0 ? Number(v) : parseInt(v, 8))) as [number, number]),
      );
      const wrong = cases.filter(({ start, text, directory }, i) => parseChmod(text)(start, directory) !== modes.get(i));
      expect(wrong.map(({ start, text, directory }) => `${start.toString(8)} ${text} ${directory ? 'dir' : 'file'}`)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sets the special bits as BSD setmode does, and takes octal modes', () => {
    const cases: [string, number, boolean, number][] = [
      ['u+s', 0o755, false, 0o4755],
      ['g+s', 0o755, true, 0o2755],
      ['+s', 0o755, false, 0o6755],
      ['o+s', 0o755, false, 0o755], // set-ID bits are not other's
      ['+t', 0o777, true, 0o1777],
      ['o+t', 0o777, true, 0o777], // nor the sticky bit, for other alone
      ['u=rwx', 0o4755, false, 0o755], // = clears the class's set-ID bit
      ['a=rx', 0o1777, true, 0o1555], // but not the sticky bit
      ['=rwxt', 0o755, true, 0o1777],
      ['755', 0o600, false, 0o755],
      ['0644', 0o777, true, 0o644],
      ['4755', 0o600, false, 0o4755],
      ['7', 0o644, false, 0o007],
    ];
    for (const [text, start, directory, want] of cases) expect(parseChmod(text)(start, directory).toString(8), text).toBe(want.toString(8));
  });

  it('refuses what is neither octal nor symbolic', () => {
    for (const text of ['', '8', '0x1ff', '17777', 'u+q', 'x+r', 'u', 'u=r,', ',', 'rw', 'u=r-q']) expect(() => parseChmod(text), text).toThrow(/--chmod=/);
  });
});
