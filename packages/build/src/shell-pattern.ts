/**
 * The patterns of `${name#pattern}`, `${name%pattern}` and `${name/pattern/replacement}`, read as the Dockerfile
 * frontend reads them (BuildKit 1.7 and later): `*` any run of characters, `?` one character, `\` taking `*`,
 * `?` or `\` literally; no bracket expressions. Characters are code points, and neither wildcard crosses a
 * newline (the frontend's matcher is Go's regexp, whose `.` excludes it).
 */
import { InvalidArgumentError } from '@strata/core';

/**
 * A word Docker's processing refuses (an open quote, a bad substitution, `${name:?message}`, a pattern's bad
 * escape); the builder names the Dockerfile line it came from.
 */
export class WordError extends InvalidArgumentError {
  // StrataError's `instanceof` goes by code, so that every INVALID_ARGUMENT would pass; this one is told apart
  // by its prototype, being the builder's alone.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

const REGEXP_SPECIAL = new Set(['[', ']', '{', '}', '.', '+', '(', ')', '|', '^', '$']);

function toRegExp(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  let source = anchored ? '^' : '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') source += greedy ? '[^\\n]*' : '[^\\n]*?';
    else if (ch === '?') source += '[^\\n]';
    else if (ch === '\\') {
      const next = chars[i + 1];
      // `\}` and `\/` only kept the character from closing the expansion: the character itself is literal.
      if (next === '}' || next === '/') continue;
      if (next !== '*' && next !== '?' && next !== '\\') throw new WordError(`invalid escape ${JSON.stringify(`\\${next ?? ''}`)} in pattern ${JSON.stringify(pattern)}`);
      source += `\\${next}`;
      i++;
    } else source += REGEXP_SPECIAL.has(ch) ? `\\${ch}` : ch;
  }
  return new RegExp(source, 'u');
}

/** `value` without the shortest (longest if `greedy`) prefix matching `pattern`: `${name#pattern}`, `${name##pattern}`. */
export function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const match = toRegExp(pattern, greedy, true).exec(value);
  return match ? value.slice(match[0].length) : value;
}

/**
 * `value` without the shortest (longest if `greedy`) suffix matching `pattern`: `${name%pattern}`,
 * `${name%%pattern}`. A regular expression finds the leftmost match, so the suffix is found as a prefix of
 * the reversed value, by the reversed pattern (its escapes kept before the character they escape).
 */
export function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  return reverse(trimPrefix(reversePattern(pattern), reverse(value), greedy));
}

/** `${name/pattern/replacement}` (the first, leftmost and longest match) and `${name//pattern/replacement}` (every match). */
export function replacePattern(value: string, pattern: string, replacement: string, all: boolean): string {
  const regexp = toRegExp(pattern, true, false);
  if (!all) {
    const match = regexp.exec(value);
    return match ? value.slice(0, match.index) + replacement + value.slice(match.index + match[0].length) : value;
  }
  return value.replace(new RegExp(regexp.source, 'gu'), () => replacement);
}

function reverse(text: string): string {
  return Array.from(text).reverse().join('');
}

function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) tokens.push(chars[i] === '\\' && i + 1 < chars.length ? chars[i]! + chars[++i]! : chars[i]!);
  return tokens.reverse().join('');
}
