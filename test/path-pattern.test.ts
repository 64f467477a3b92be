/**
 * `pathMatcher` against Go's `path.Match` itself, the matcher under BuildKit's COPY sources and moby's
 * `reference=` filter: Go's own table of cases (`src/path/match_test.go` of the machine's toolchain) and a
 * few thousand random patterns over the characters that mean something to it, each pair asked of Go.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isStrataError, pathMatcher } from '@strata/core';
import { goProgram, goRoot } from './helpers/go-program.js';
import { seededRandom } from './helpers/random.js';

const MATCHER = String.raw`package main

import (
	"encoding/json"
	"os"
	"path"
)

func main() {
	var pairs [][2]string
	if err := json.NewDecoder(os.Stdin).Decode(&pairs); err != nil {
		panic(err)
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		matched, err := path.Match(p[0], p[1])
		switch {
		case err != nil:
			out[i] = "bad"
		case matched:
			out[i] = "match"
		default:
			out[i] = "no"
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
`;

type Verdict = 'match' | 'no' | 'bad';

function goVerdicts(pairs: ReadonlyArray<readonly [string, string]>): Verdict[] {
  return JSON.parse(execFileSync(goProgram('go-path-match', MATCHER), { input: JSON.stringify(pairs), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as Verdict[];
}

function strataVerdict(pattern: string, name: string): Verdict {
  try {
    return pathMatcher(pattern)(name) ? 'match' : 'no';
  } catch (error) {
    if (isStrataError(error) && error.code === 'INVALID_ARGUMENT') return 'bad';
    throw error;
  }
}

/** The pattern and name of each row of Go's `matchTests` (Go string literals read as JSON ones, which they are here). */
function goTable(): Array<[string, string]> {
  const source = readFileSync(join(goRoot(), 'src', 'path', 'match_test.go'), 'utf8');
  const table = source.slice(source.indexOf('var matchTests'), source.indexOf('\n}\n', source.indexOf('var matchTests')));
  const rows = [...table.matchAll(/^\t\{("(?:[^"\\]|\\.)*"), ("(?:[^"\\]|\\.)*"), /gm)];
  return rows.map(([, pattern, name]) => [JSON.parse(pattern!) as string, JSON.parse(name!) as string]);
}

describe('pathMatcher against Go path.Match', () => {
  it("agrees on every case of Go's own table", () => {
    const table = goTable();
    expect(table.length).toBeGreaterThan(40);
    const go = goVerdicts(table);
    expect(table.map(([pattern, name]) => strataVerdict(pattern, name))).toEqual(go);
    // The table has each kind: matches, misses and malformed patterns.
    expect(new Set(go)).toEqual(new Set(['match', 'no', 'bad']));
  });

  it('tells whether a class of the pattern can match a `/`', () => {
    const takes = (pattern: string) => pathMatcher(pattern).classTakesSlash;
    expect(['a[^b]', '[\\--0]', '[/]', '*[!-0]'].filter(takes)).toEqual(['a[^b]', '[\\--0]', '[/]', '*[!-0]']);
    expect(['a[t]', '[^/]', '*?', 'a/b', '\\[', '[^\\--0]'].filter(takes)).toEqual([]);
  });

  it('agrees on random patterns and names', () => {
    const next = seededRandom(0x5eed);
    const pick = (alphabet: readonly string[], max: number) => Array.from({ length: Math.floor(next() * (max + 1)) }, () => alphabet[Math.floor(next() * alphabet.length)]!).join('');
    const patternChars = ['a', 'b', 'z', '/', '*', '?', '[', ']', '^', '-', '\\', '\u03b1', '\u{1f600}'];
    const nameChars = ['a', 'b', 'z', '/', '-', ']', '^', '*', '\u03b1', '\u{1f600}'];
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < 20_000; i++) pairs.push([pick(patternChars, 7), pick(nameChars, 6)]);
    // Well-formed classes are rare among random characters: add some built to be.
    for (let i = 0; i < 5000; i++) pairs.push([`${pick(['a', '*', '?'], 2)}[${next() < 0.5 ? '^' : ''}${pick(['a', 'b-z', '\\]', '\\-', '\u03b1-\u{1f600}', 'z-a', '/'], 3) || 'a'}]${pick(['a', '*', '/'], 2)}`, pick(nameChars, 4)]);
    const go = goVerdicts(pairs);
    const differ = pairs.flatMap(([pattern, name], i) => (strataVerdict(pattern, name) === go[i] ? [] : [{ pattern, name, go: go[i] }]));
    expect(differ).toEqual([]);
    for (const verdict of ['match', 'no', 'bad'] as const) expect(go.filter((v) => v === verdict).length).toBeGreaterThan(200);
  });
});
