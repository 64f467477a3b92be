/**
 * `COPY --chmod` and `ADD --chmod` values: octal (`755`, up to 07777) or, since Dockerfile 1.14, chmod(1)'s
 * symbolic form (`+x`, `u=rwX,go=rX`, `g=u`, `go-w`), applied to each copied file's own mode as BuildKit's
 * copy does (BSD setmode semantics, umask 0: no `who` means all of u, g and o).
 *
 * A symbolic mode is clauses separated by `,`; each is `[ugoa]*` then one or more actions, an operator
 * (`+`, `-`, `=`) followed by permissions (`rwxXst`) or by one class to copy (`u`, `g`, `o`). `X` is execute
 * for a directory, or for a file that had an execute bit before the change; `s` is set-user-ID for `u` and
 * set-group-ID for `g` (ignored for `o` alone); `t` is the sticky bit (ignored for `o` alone). `=` clears the
 * classes' permissions and set-ID bits first (the sticky bit only when it sets `t`).
 */
import { InvalidArgumentError } from '@strata/core';

/** A mode change: the new permission bits (07777) of a node with mode `mode`. */
export type ModeChange = (mode: number, directory: boolean) => number;

const CLASS_BITS: Readonly<Record<string, number>> = { u: 0o4700, g: 0o2070, o: 0o0007, a: 0o6777 };
const SHIFT: Readonly<Record<string, number>> = { u: 6, g: 3, o: 0 };

interface Action {
  readonly op: '+' | '-' | '=';
  /** Permission letters (`rwxXst`), or one class whose bits are copied. */
  readonly perms: string;
  readonly copy?: 'u' | 'g' | 'o';
}

interface Clause {
  /** The classes named, `''` for none (all, as with umask 0). */
  readonly who: string;
  readonly actions: readonly Action[];
}

function invalid(text: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`--chmod=${text}: ${why} (an octal mode up to 7777, or chmod's symbolic form such as +x or u=rwX,go=rX)`);
}

function parseClauses(text: string): Clause[] {
  const clauses: Clause[] = [];
  for (const part of text.split(',')) {
    const match = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/.exec(part);
    if (match === null) throw invalid(text, `${JSON.stringify(part)} is not a clause`);
    const actions: Action[] = [];
    for (const [, op, perms] of match[2]!.matchAll(/([-+=])([ugo]|[rwxXst]*)/g)) {
      actions.push(/^[ugo]$/.test(perms!) ? { op: op as Action['op'], perms: '', copy: perms as 'u' | 'g' | 'o' } : { op: op as Action['op'], perms: perms! });
    }
    clauses.push({ who: match[1]!, actions });
  }
  return clauses;
}

/** The change a `--chmod` value asks for. Throws INVALID_ARGUMENT for one that is neither form. */
export function parseChmod(text: string): ModeChange {
  if (/^\d/.test(text)) {
    if (!/^[0-7]+$/.test(text) || parseInt(text, 8) > 0o7777) throw invalid(text, 'not an octal mode');
    const mode = parseInt(text, 8);
    return () => mode;
  }
  const clauses = parseClauses(text);
  return (original, directory) => {
    let mode = original & 0o7777;
    for (const { who, actions } of clauses) {
      const classes = who === '' || who.includes('a') ? 'ugo' : who;
      const otherOnly = !/[ua]/.test(who) && who !== '' && !who.includes('g');
      let affected = 0;
      for (const c of classes) affected |= CLASS_BITS[c]!;
      for (const { op, perms, copy } of actions) {
        let bits = 0;
        let sticky = false;
        if (copy !== undefined) {
          const value = (mode >> SHIFT[copy]!) & 0o7;
          for (const c of classes) bits |= value << SHIFT[c]!;
        } else {
          for (const p of perms) {
            if (p === 'r') bits |= 0o444;
            else if (p === 'w') bits |= 0o222;
            else if (p === 'x') bits |= 0o111;
            else if (p === 'X') bits |= directory || (original & 0o111) !== 0 || op === '-' ? 0o111 : 0;
            else if (p === 's') bits |= otherOnly ? 0 : 0o6000;
            else if (p === 't' && !otherOnly) sticky = true;
          }
        }
        const change = (bits & affected) | (sticky ? 0o1000 : 0);
        if (op === '+') mode |= change;
        else if (op === '-') mode &= ~change;
        else {
          // `=` clears what it could set: the classes' permissions, and their set-ID bits unless it copies a class.
          const cleared = copy !== undefined ? affected & 0o777 : affected | (sticky ? 0o1000 : 0);
          mode = (mode & ~cleared) | change;
        }
      }
    }
    return mode;
  };
}
