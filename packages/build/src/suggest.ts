/**
 * "Did you mean …?": the option a mistyped name was most likely meant to be, within two edits, as BuildKit's
 * suggest package finds it for instructions, stages, flags and variables.
 */

/** The Levenshtein distance of two strings. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The closest of `options` to `name` within two edits, as BuildKit suggests one; undefined when none is, or one is `name`. */
export function suggestName(name: string, options: Iterable<string>): string | undefined {
  let best: string | undefined;
  let min = 3;
  for (const option of [...options].sort()) {
    if (option === name) return undefined;
    const d = distance(name, option);
    if (d < min) {
      best = option;
      min = d;
    }
  }
  return best;
}

/** `suggestName` ignoring case, the suggestion in the case `name` was written in (all lower, all upper, or as the option is). */
export function suggestIgnoringCase(name: string, options: Iterable<string>): string | undefined {
  const near = suggestName(name.toLowerCase(), [...options].map((o) => o.toLowerCase()));
  if (near === undefined) return undefined;
  return name === name.toLowerCase() ? near : name === name.toUpperCase() ? near.toUpperCase() : [...options].find((o) => o.toLowerCase() === near);
}

/** ` (did you mean X?)` for the suggestion, or nothing. */
export function didYouMean(suggestion: string | undefined): string {
  return suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
}
