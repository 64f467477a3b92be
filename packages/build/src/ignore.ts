/**
 * `.dockerignore` and COPY's path patterns, with Docker's rules (patterns relative to the context root, `**`,
 * `!` exceptions, the last matching line winning), through `@balena/dockerignore`, a port of Docker's own
 * matcher.
 */
import * as balena from '@balena/dockerignore';
import type { Ignore } from '@balena/dockerignore';
import { InvalidArgumentError, pathMatcher } from '@strata/core';

// A CommonJS module (module.exports is the factory): Node's ESM loader and the bundler both give it as `default`.
const dockerignore = (balena as unknown as { default: (options?: { ignorecase?: boolean }) => Ignore }).default;

/** Whether a context-relative path (`a/b.txt`, no leading `./` or `/`) is excluded. */
export type ContextFilter = (path: string) => boolean;

/** A `.dockerignore`'s patterns: its lines trimmed, comments and blank lines skipped. */
export function ignorePatterns(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** The filter a `.dockerignore`'s text makes. */
export function contextFilter(text: string): ContextFilter {
  return patternFilter(ignorePatterns(text));
}

/** Whether patterns have exceptions (`!`), under which an excluded directory may hold what is kept. */
export function hasExceptions(patterns: readonly string[]): boolean {
  return patterns.some((p) => p.trim().startsWith('!'));
}

/**
 * Whether a path matches `patterns` with the same rules (a path under a matching directory matches too;
 * `!` makes an exception): what COPY's `--exclude` and `--parents` patterns use, as BuildKit's copy does.
 */
export function patternFilter(patterns: readonly string[]): ContextFilter {
  checkPatterns(patterns);
  const matcher = dockerignore({ ignorecase: false }).add([...patterns]);
  return (path) => matcher.ignores(path);
}

/**
 * Throws INVALID_ARGUMENT for what Docker's pattern matcher refuses: a `!` with nothing after it, and a
 * pattern Go's `filepath.Match` finds malformed (`[` unclosed, a bad range).
 */
export function checkPatterns(patterns: readonly string[]): void {
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === '!') throw new InvalidArgumentError('illegal exclusion pattern: "!"');
    pathMatcher(pattern.startsWith('!') ? pattern.slice(1).trim() : pattern);
  }
}
