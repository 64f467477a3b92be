/**
 * Symlink resolution inside a root: the one algorithm behind every place strata follows symlinks for a
 * layer or a container, so a security decision is made by one set of rules. Absolute link targets restart
 * at the root and `..` never climbs above it, as for a process chrooted at the root. The callers differ
 * only in what they do at the edges, and `ResolveRules` says so:
 *
 * | edge                               | apply (a layer written to a host directory) | container view (`WritableLayer`)    |
 * | ---------------------------------- | ------------------------------------------- | ----------------------------------- |
 * | `..` at the root                   | refused: a layer that climbs is hostile     | clamped: the root is its own parent |
 * | more than 40 symlinks              | refused (UNSAFE_PATH)                       | ELOOP, as the kernel                |
 * | a missing parent                   | resolved lexically: apply creates it        | ENOENT (lexical for `mkdir -p`)     |
 * | a parent that is not a directory   | resolved lexically: placing the entry fails | ENOTDIR                             |
 * | the last component, a symlink      | never followed                              | followed by stat-like calls         |
 *
 * Cost: one lookup per component walked, and one per symlink hop; no step rescans what was resolved.
 */
import { childPath, parentOf, ROOT } from './path.js';

/** What a root holds at one name of one (resolved) directory. */
export type LookupResult = 'missing' | 'directory' | 'other' | { readonly symlink: string };

/** Looks up `name` in the resolved directory `dir` (a clean path; `.` is the root). */
export type Lookup = (dir: string, name: string) => LookupResult;

/** Why a resolution stopped. */
export type ResolveFailure = 'above-root' | 'loop' | 'missing' | 'not-directory';

/** The edges on which the callers of `resolvePath` differ (see the module comment). */
export interface ResolveRules {
  /** Follow a symlink in the last component too. */
  readonly followLast: boolean;
  /** `..` at the root: refuse (an error), or clamp (the root is its own parent). */
  readonly aboveRoot: 'refuse' | 'clamp';
  /** A component before the last that is missing: an error, or the rest resolves as plain names. */
  readonly missingParent: 'error' | 'lexical';
  /** A component before the last that is neither a directory nor a symlink: an error, or lexical. */
  readonly fileParent: 'error' | 'lexical';
  /** The error to throw for each failure. */
  readonly fail: (failure: ResolveFailure) => Error;
}

/** The most symlinks one resolution follows, as Linux (MAXSYMLINKS). */
export const MAX_SYMLINK_HOPS = 40;

/** Pushes the components of `path` onto `stack` so that they pop in order ('' and '.' dropped). */
function pushComponents(stack: string[], path: string): void {
  const parts = path.split('/');
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i]!;
    if (part !== '' && part !== '.') stack.push(part);
  }
}

/**
 * Resolves `path` (relative to the root; a leading `/` means the root too) to a clean path that holds no
 * symlink before its last component, or none at all with `followLast`. Throws `rules.fail(...)`.
 */
export function resolvePath(path: string, lookup: Lookup, rules: ResolveRules): string {
  const pending: string[] = [];
  pushComponents(pending, path);
  let dir = ROOT;
  let depth = 0;
  let hops = 0;
  /** Depth at which a missing or non-directory parent was passed: below it, names are not looked up. */
  let lexicalFrom = Infinity;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === '..') {
      if (depth === 0) {
        if (rules.aboveRoot === 'refuse') throw rules.fail('above-root');
        continue;
      }
      dir = parentOf(dir);
      depth--;
      if (depth < lexicalFrom) lexicalFrom = Infinity;
      continue;
    }
    const last = pending.length === 0;
    if (depth < lexicalFrom && (!last || rules.followLast)) {
      const found = lookup(dir, part);
      if (typeof found === 'object') {
        if (++hops > MAX_SYMLINK_HOPS) throw rules.fail('loop');
        if (found.symlink.startsWith('/')) {
          dir = ROOT;
          depth = 0;
        }
        pushComponents(pending, found.symlink);
        continue;
      }
      if (!last && found !== 'directory') {
        const rule = found === 'missing' ? rules.missingParent : rules.fileParent;
        if (rule === 'error') throw rules.fail(found === 'missing' ? 'missing' : 'not-directory');
        lexicalFrom = depth + 1;
      }
    }
    dir = childPath(dir, part);
    depth++;
  }
  return dir;
}
