/**
 * COPY's wildcards against BuildKit's resolution: fsutil's `ResolveWildcards` (read in the BuildKit mirror:
 * split at the first segment with a wildcard, the part before resolved with its symlinks, the rest matched
 * by `filepath.Match` against every path of a `filepath.Walk` below it, a matched directory not entered),
 * restated in a small Go program on Go's own `filepath.Walk` and `filepath.Match`. Random trees and
 * patterns, each asked of Go and of the build context's `match`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileChecksums } from '../packages/build/src/checksums.js';
import { contextFilter } from '../packages/build/src/ignore.js';
import { ContextTree } from '../packages/build/src/sources.js';
import { goProgram } from './helpers/go-program.js';
import { seededRandom } from './helpers/random.js';

const RESOLVER = String.raw`package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if ch == '\\' {
			i++
		} else if ch == '*' || ch == '?' || ch == '[' {
			return true
		}
	}
	return false
}

func splitWildcards(p string) (string, string) {
	var p1, p2 []string
	found := false
	for _, part := range strings.Split(filepath.Join(p), "/") {
		if !found && containsWildcards(part) {
			found = true
		}
		if found {
			p2 = append(p2, part)
		} else {
			p1 = append(p1, part)
		}
	}
	return filepath.Join(p1...), filepath.Join(p2...)
}

func resolve(root, src string) []string {
	out := []string{}
	d1, d2 := splitWildcards(src)
	if d2 == "" {
		// No wildcard: the path itself (BuildKit copies it or fails on it).
		if _, err := os.Stat(filepath.Join(root, d1)); err == nil {
			out = append(out, d1)
		}
		return out
	}
	base, err := filepath.EvalSymlinks(filepath.Join(root, d1))
	if err != nil {
		return out
	}
	filepath.Walk(base, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		if rel == "." {
			return nil
		}
		if match, _ := filepath.Match(d2, rel); !match {
			return nil
		}
		found, _ := filepath.Rel(root, path)
		out = append(out, found)
		if info.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func main() {
	var asked struct {
		Root     string
		Patterns []string
	}
	if err := json.NewDecoder(os.Stdin).Decode(&asked); err != nil {
		panic(err)
	}
	root, err := filepath.EvalSymlinks(asked.Root)
	if err != nil {
		panic(err)
	}
	out := make([][]string, len(asked.Patterns))
	for i, pattern := range asked.Patterns {
		out[i] = resolve(root, pattern)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
`;

const noChecksums = undefined as unknown as FileChecksums;
const work = mkdtempSync(join(tmpdir(), 'strata-copy-wildcards-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("COPY's wildcards against BuildKit's resolution (Go's Walk and Match)", () => {
  it('names the same paths, in the same order, for random trees and patterns', async () => {
    const next = seededRandom(0xc0ffee);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const names = ['a', 'b', 'ab', 'a-b', 'ba', 'x.t', '-', 'a b', '\u03b1', 'a\\b'];
    const tokens = ['a', 'b', '*', '*', '*', '?', '?', '[ab]', '[^a]', '[^a]', '[a-c]', '[!a]', '\\*', '\\a', '-', 'x', '.t', '**', '[\u03b1-\u03c9]', '[t]', '[^/]', '[\\--0]'];
    const differ: unknown[] = [];
    let compared = 0;
    /** Cases where Go found something, and where it found a path deeper than the pattern (a class took a `/`). */
    let found = 0;
    let deeper = 0;
    for (let t = 0; t < 12; t++) {
      const root = join(work, `tree-${t}`);
      const dirs = [''];
      mkdirSync(root);
      for (let i = 0; i < 40; i++) {
        const parent = pick(dirs);
        if (parent.split('/').length > 3) continue;
        const path = parent === '' ? pick(names) : `${parent}/${pick(names)}`;
        if (dirs.includes(path)) continue;
        try {
          if (next() < 0.4) {
            mkdirSync(join(root, path));
            dirs.push(path);
          } else if (next() < 0.1 && dirs.length > 1) {
            symlinkSync(join(root, pick(dirs.slice(1))), join(root, path)); // within the tree
          } else {
            writeFileSync(join(root, path), path);
          }
        } catch {
          // the name is taken (a file or a link): keep what is there
        }
      }
      const patterns: string[] = [];
      for (let i = 0; i < 300; i++) {
        // Now and then a malformed one (`[]`), which BuildKit takes for matching nothing.
        const segments = Array.from({ length: 1 + Math.floor(next() * 3) }, () => Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(tokens)).join(''));
        const prefix = next() < 0.3 ? `${pick(dirs.filter((d) => d !== '')) ?? ''}/` : '';
        patterns.push(`${prefix}${segments.join('/')}${next() < 0.02 ? '[]' : ''}`);
      }
      const go = JSON.parse(execFileSync(goProgram('buildkit-wildcards', RESOLVER), { input: JSON.stringify({ Root: root, Patterns: patterns }), encoding: 'utf8' })) as string[][];
      const tree = new ContextTree(root, contextFilter(''), false, noChecksums);
      for (const [i, pattern] of patterns.entries()) {
        let ours: string[] | string;
        try {
          ours = await tree.match(pattern);
        } catch (error) {
          // BuildKit ignores filepath.Match's error: a malformed pattern matches nothing there, and is refused here.
          ours = /bad pattern/.test((error as Error).message) ? [] : String(error);
        }
        compared++;
        if (go[i]!.length > 0) found++;
        if (go[i]!.some((path) => path.split('/').length > pattern.split('/').length)) deeper++;
        if (JSON.stringify(ours) !== JSON.stringify(go[i])) differ.push({ tree: t, pattern, go: go[i], strata: ours });
      }
    }
    expect(differ).toEqual([]);
    expect(compared).toBe(12 * 300);
    expect(found).toBeGreaterThan(400);
    expect(deeper).toBeGreaterThan(0);
  });
});
