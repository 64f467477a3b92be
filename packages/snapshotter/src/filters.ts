/**
 * containerd's filter syntax, for `walk`: a filter is selectors joined by `,` (all must hold); several
 * filters are alternatives (any may hold). A selector is a field path (`kind`, `name`, `parent`,
 * `labels.<key>`, with `"quoted"` parts for keys holding dots), then `==`, `!=` or `~=` (a regular
 * expression) and a value, or nothing (the field is present and not empty).
 *
 *   kind==active,labels."containerd.io/gc.root"==check-walk
 *   parent!="",labels.l
 */
import { InvalidArgumentError, quote } from '@strata/core';

/** One condition on one field. */
interface Selector {
  readonly path: readonly string[];
  readonly operator: '==' | '!=' | '~=' | 'present';
  readonly value: string;
  readonly pattern?: RegExp;
}

/** A parsed filter: selectors that must all hold. */
export type Filter = readonly Selector[];

/** What a filter looks at: a field path's value, or undefined when the field is absent. */
export type FieldLookup = (path: readonly string[]) => string | undefined;

class Scanner {
  #at = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.#at >= this.text.length;
  }

  peek(n = 1): string {
    return this.text.slice(this.#at, this.#at + n);
  }

  take(n = 1): string {
    const out = this.text.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  fail(what: string): never {
    throw new InvalidArgumentError(`filter ${quote(this.text)}: ${what} at position ${this.#at}`);
  }

  /** A quoted string (`"…"` with backslash escapes, or `/…/` for patterns). */
  quoted(): string {
    const close = this.take();
    let out = '';
    for (;;) {
      if (this.done) this.fail('unterminated quote');
      const c = this.take();
      if (c === close) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.take();
      const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', '/': '/' };
      if (escapes[e] === undefined) this.fail(`unknown escape \\${e}`);
      out += escapes[e];
    }
  }

  /** A field name: letters, digits and `_`, or a quoted string. */
  field(): string {
    if (this.peek() === '"') return this.quoted();
    const match = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.#at));
    if (!match) this.fail('expected a field name');
    return this.take(match[0].length);
  }

  /** A value: quoted, or everything up to the next `,`. */
  value(): string {
    if (this.peek() === '"' || this.peek() === '/') return this.quoted();
    const end = this.text.indexOf(',', this.#at);
    return this.take((end < 0 ? this.text.length : end) - this.#at);
  }
}

/** Parses one filter string. Throws INVALID_ARGUMENT for a malformed one. */
export function parseFilter(text: string): Filter {
  const scanner = new Scanner(text);
  const selectors: Selector[] = [];
  if (text.trim() === '') return selectors;
  for (;;) {
    const path = [scanner.field()];
    while (scanner.peek() === '.') {
      scanner.take();
      path.push(scanner.field());
    }
    const op = scanner.peek(2);
    if (op === '==' || op === '!=' || op === '~=') {
      scanner.take(2);
      const value = scanner.value();
      let pattern: RegExp | undefined;
      if (op === '~=') {
        try {
          pattern = new RegExp(value);
        } catch {
          scanner.fail(`invalid pattern ${quote(value)}`);
        }
      }
      selectors.push(pattern ? { path, operator: op, value, pattern } : { path, operator: op, value });
    } else {
      selectors.push({ path, operator: 'present', value: '' });
    }
    if (scanner.done) return selectors;
    if (scanner.take() !== ',') scanner.fail('expected , or an operator');
  }
}

/** Whether a filter holds for the fields `lookup` gives. */
export function matches(filter: Filter, lookup: FieldLookup): boolean {
  for (const s of filter) {
    const value = lookup(s.path);
    switch (s.operator) {
      case 'present':
        if (value === undefined || value === '') return false;
        break;
      case '==':
        if ((value ?? '') !== s.value) return false;
        break;
      case '!=':
        if ((value ?? '') === s.value) return false;
        break;
      case '~=':
        if (value === undefined || !s.pattern!.test(value)) return false;
        break;
    }
  }
  return true;
}

/** Whether any of `filters` holds (no filters: everything matches). */
export function matchesAny(filters: readonly Filter[], lookup: FieldLookup): boolean {
  return filters.length === 0 || filters.some((f) => matches(f, lookup));
}
