/**
 * Go's `path.Match` patterns, which Docker and BuildKit use for COPY sources and `reference=` filters:
 * `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]` and `[^a-z]` a class (which may
 * take `/`), `\` escapes the next character. A pattern Go calls malformed (`ErrBadPattern`) is refused
 * whole, as Go refuses it whatever the name.
 *
 * Matching follows Go's algorithm, not a regular expression's: each run of `*` takes the shortest prefix
 * after which the next chunk matches, and never gives it back, which differs where a class takes a `/`
 * (`*[^a]*` does not match `-/z` in Go). And it reads the name's UTF-8 bytes as Go does: a `*` may stop
 * inside a character, whose remaining bytes `?` and classes then read one at a time as U+FFFD (`*?[^b]`
 * matches the single character U+1F600 in Go).
 */
import { InvalidArgumentError } from './errors.js';

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
/** `?`: one character, not `/`. */
const ANY = -1;

interface CharClass {
  readonly negated: boolean;
  /** Inclusive code point ranges, lo then hi. */
  readonly ranges: readonly number[];
}

/** A byte of a literal character, ANY, or a class. */
type Item = number | CharClass;

/** What follows a run of `*` (or the pattern's start), up to the next `*`. */
interface Chunk {
  readonly star: boolean;
  readonly items: readonly Item[];
}

/** A test of names against a pattern; `classTakesSlash` says whether a class of it can match a `/`. */
export type PathMatcher = ((name: string) => boolean) & { readonly classTakesSlash: boolean };

/**
 * A test of names against `pattern`, as `path.Match` decides it. Only a class can match a `/` (`*` and `?`
 * never do): without such a class, a name's `/`s meet the pattern's, one for one. Throws INVALID_ARGUMENT
 * for a malformed pattern.
 */
export function pathMatcher(pattern: string): PathMatcher {
  const chunks = parse(pattern);
  const classTakesSlash = chunks.some((chunk) => chunk.items.some((item) => typeof item !== 'number' && takes(item, SLASH)));
  return Object.assign((name: string) => matches(chunks, Buffer.from(name, 'utf8')), { classTakesSlash });
}

function takes(item: CharClass, c: number): boolean {
  let inside = false;
  for (let r = 0; r < item.ranges.length && !inside; r += 2) inside = item.ranges[r]! <= c && c <= item.ranges[r + 1]!;
  return inside !== item.negated;
}

function parse(pattern: string): Chunk[] {
  const chars = codePoints(pattern);
  const bad = (): never => {
    throw new InvalidArgumentError(`bad pattern ${JSON.stringify(pattern)}: Go's path.Match syntax (*, ?, [class], \\ escapes)`);
  };
  const chunks: Chunk[] = [];
  let items: Item[] = [];
  let star = false;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === 0x2a /* * */) {
      if (items.length > 0) chunks.push({ star, items });
      items = [];
      star = true;
    } else if (c === 0x3f /* ? */) {
      items.push(ANY);
    } else if (c === BACKSLASH) {
      if (++i === chars.length) bad();
      items.push(...literal(chars[i]!));
    } else if (c === 0x5b /* [ */) {
      i++;
      const negated = chars[i] === 0x5e; /* ^ */
      if (negated) i++;
      // A range end as Go's getEsc reads one: not `-` or `]` unescaped, and something must follow it.
      const end = (): number => {
        let e = chars[i];
        if (e === undefined || e === 0x2d || e === 0x5d) bad();
        if (e === BACKSLASH && (e = chars[++i]) === undefined) bad();
        if (++i === chars.length) bad();
        return e!;
      };
      const ranges: number[] = [];
      for (let count = 0; chars[i] !== 0x5d /* ] */ || count === 0; count++) {
        const lo = end();
        const hi = chars[i] === 0x2d /* - */ ? (i++, end()) : lo;
        ranges.push(lo, hi);
      }
      items.push({ negated, ranges });
    } else {
      items.push(...literal(c));
    }
  }
  // A trailing `*` leaves a starred chunk with no items.
  if (items.length > 0 || star) chunks.push({ star, items });
  return chunks;
}

function matches(chunks: readonly Chunk[], name: Buffer): boolean {
  let at = 0;
  for (let c = 0; c < chunks.length; c++) {
    const { star, items } = chunks[c]!;
    const last = c === chunks.length - 1;
    if (star && items.length === 0) return name.indexOf(SLASH, at) < 0; // a trailing `*` takes the rest but `/`
    let end = matchChunk(items, name, at);
    if (end >= 0 && (!last || end === name.length)) {
      at = end;
      continue;
    }
    if (!star) return false;
    // The shortest run of the star after which the chunk matches (the whole rest, for the last chunk).
    let found = false;
    for (let skip = at; skip < name.length && name[skip] !== SLASH; skip++) {
      end = matchChunk(items, name, skip + 1);
      if (end >= 0 && (!last || end === name.length)) {
        at = end;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return at === name.length;
}

/** Where `items` stop matching `name` from `at`, or -1. */
function matchChunk(items: readonly Item[], name: Buffer, at: number): number {
  for (const item of items) {
    if (at >= name.length) return -1;
    if (typeof item === 'number' && item !== ANY) {
      if (name[at++] !== item) return -1;
      continue;
    }
    const lead = name[at]!;
    // A character, or U+FFFD for a byte that starts none (after a `*` stopped inside one), as Go decodes.
    const width = lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    const c = lead < 0x80 ? lead : lead < 0xc0 ? 0xfffd : name.toString('utf8', at, at + width).codePointAt(0)!;
    at += width;
    if (item === ANY ? c === SLASH : !takes(item, c)) return -1;
  }
  return at;
}

/** The UTF-8 bytes of a literal character. */
function literal(c: number): number[] {
  return [...Buffer.from(String.fromCodePoint(c), 'utf8')];
}

function codePoints(text: string): number[] {
  const out: number[] = [];
  for (const char of text) out.push(char.codePointAt(0)!);
  return out;
}
