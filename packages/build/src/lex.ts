/**
 * Docker's word processing for Dockerfile arguments: quotes, the escape character, and variable expansion
 * (`$name`, `${name}`, `${name:-word}`, `${name:+word}`), as the builder does it before a step runs (the
 * shell does its own for RUN, CMD and ENTRYPOINT in shell form, which are never expanded here).
 *
 * - Outside quotes the escape character (`\`, or `` ` `` by directive) takes the next character literally.
 * - Single quotes take everything literally up to the next single quote.
 * - Double quotes allow expansion; inside them the escape character escapes only `"`, `$` and itself.
 * - An unset variable is empty (so is `$1`: a build has no positional parameters); `$` followed by
 *   neither a name, digits nor `{` is a literal `$`.
 * - Splitting into words (`processWords`) happens on unquoted whitespace, including whitespace a variable's
 *   value brings outside quotes; quotes are removed.
 */
import { InvalidArgumentError } from '@strata/core';

/** Variables visible to a step, name → value. */
export type Env = ReadonlyMap<string, string>;

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const SPACE = /\s/;

class Lexer {
  #at = 0;
  readonly #words: string[] = [];
  #word = '';
  #inWord = false;

  constructor(
    readonly text: string,
    readonly env: Env,
    readonly escape: string,
    readonly split: boolean,
    /** Quotes as plain characters (a COPY heredoc's body): only escapes and variables are processed. */
    readonly rawQuotes = false,
  ) {}

  run(): string[] {
    const text = this.text;
    while (this.#at < text.length) {
      const ch = text[this.#at]!;
      if (ch === this.escape) {
        this.#at++;
        if (this.#at < text.length) this.#add(text[this.#at++]!);
        continue;
      }
      if (ch === "'" && !this.rawQuotes) {
        this.#single();
        continue;
      }
      if (ch === '"' && !this.rawQuotes) {
        this.#double();
        continue;
      }
      if (ch === '$') {
        this.#unquoted(this.#dollar());
        continue;
      }
      this.#at++;
      if (this.split && SPACE.test(ch)) this.#end();
      else this.#add(ch);
    }
    this.#end();
    return this.#words;
  }

  #add(text: string): void {
    this.#word += text;
    this.#inWord = true;
  }

  #end(): void {
    if (this.#inWord || (!this.split && this.#words.length === 0)) this.#words.push(this.#word);
    this.#word = '';
    this.#inWord = false;
  }

  /** An expansion outside quotes: split on its whitespace when splitting. */
  #unquoted(value: string): void {
    if (!this.split) {
      this.#add(value);
      return;
    }
    for (const ch of value) {
      if (SPACE.test(ch)) this.#end();
      else this.#add(ch);
    }
  }

  #single(): void {
    const close = this.text.indexOf("'", this.#at + 1);
    if (close < 0) throw new InvalidArgumentError(`unterminated single quote in ${JSON.stringify(this.text)}`);
    this.#add(this.text.slice(this.#at + 1, close));
    this.#at = close + 1;
  }

  #double(): void {
    const text = this.text;
    this.#at++;
    this.#inWord = true; // "" is an empty word
    for (;;) {
      if (this.#at >= text.length) throw new InvalidArgumentError(`unterminated double quote in ${JSON.stringify(text)}`);
      const ch = text[this.#at]!;
      if (ch === '"') {
        this.#at++;
        return;
      }
      if (ch === this.escape && this.#at + 1 < text.length && ['"', '$', this.escape].includes(text[this.#at + 1]!)) {
        this.#add(text[this.#at + 1]!);
        this.#at += 2;
        continue;
      }
      if (ch === '$') {
        this.#add(this.#dollar());
        continue;
      }
      this.#add(ch);
      this.#at++;
    }
  }

  /** At a `$`: the expansion, or a literal `$`. */
  #dollar(): string {
    const text = this.text;
    this.#at++;
    if (text[this.#at] === '{') {
      const start = this.#at + 1;
      let end = start;
      while (end < text.length && NAME_CHAR.test(text[end]!)) end++;
      const name = text.slice(start, end);
      if (name === '') throw new InvalidArgumentError(`bad substitution in ${JSON.stringify(text)}`);
      const value = this.env.get(name);
      if (text[end] === '}') {
        this.#at = end + 1;
        return value ?? '';
      }
      const modifier = text.slice(end, end + 2);
      if (modifier !== ':-' && modifier !== ':+') throw new InvalidArgumentError(`unsupported modifier ${JSON.stringify(text.slice(end, end + 2))} in ${JSON.stringify(text)}: use \${name:-default} or \${name:+alternative}`);
      // The word runs to the matching brace, itself processed (quotes, escapes, nested expansions).
      let depth = 1;
      let at = end + 2;
      for (; at < text.length; at++) {
        const ch = text[at]!;
        if (ch === this.escape) at++;
        else if (ch === '{') depth++;
        else if (ch === '}' && --depth === 0) break;
      }
      if (at >= text.length) throw new InvalidArgumentError(`missing } in ${JSON.stringify(text)}`);
      const word = processWord(text.slice(end + 2, at), this.env, this.escape);
      this.#at = at + 1;
      const set = value !== undefined && value !== '';
      return modifier === ':-' ? (set ? value : word) : set ? word : '';
    }
    const start = this.#at;
    if (start < text.length && /\d/.test(text[start]!)) {
      // `$1`: a positional parameter, which a build never has (digits only, as Docker reads it).
      let end = start;
      while (end < text.length && /\d/.test(text[end]!)) end++;
      this.#at = end;
      return '';
    }
    if (start < text.length && NAME_START.test(text[start]!)) {
      let end = start;
      while (end < text.length && NAME_CHAR.test(text[end]!)) end++;
      this.#at = end;
      return this.env.get(text.slice(start, end)) ?? '';
    }
    return '$';
  }
}

/** One word: expanded, quotes removed, whitespace kept (FROM, WORKDIR, USER, values of ENV and LABEL…). */
export function processWord(text: string, env: Env, escape = '\\'): string {
  return new Lexer(text, env, escape, false).run().join('');
}

/**
 * A COPY or ADD heredoc's body as BuildKit expands one whose name is not quoted: variables expanded and `\`
 * taking the next character literally (`\$` is `$`, `\\` is `\`), quotes kept as written.
 */
export function expandHeredoc(text: string, env: Env): string {
  return new Lexer(text, env, '\\', false, true).run().join('');
}

/** Words: expanded, quotes removed, split on unquoted whitespace (COPY and ADD sources, EXPOSE, VOLUME…). */
export function processWords(text: string, env: Env, escape = '\\'): string[] {
  return new Lexer(text, env, escape, true).run();
}

/**
 * Splits raw text on unquoted whitespace, keeping quotes and escapes in the words (for `key=value` lists:
 * each value is processed by `processWord` later, with the variables of its step).
 */
export function splitRaw(text: string, escape = '\\'): string[] {
  const words: string[] = [];
  let word = '';
  let quote: string | undefined;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === escape && quote !== "'" && i + 1 < text.length) {
      word += ch + text[++i]!;
      inWord = true;
    } else if (quote !== undefined) {
      word += ch;
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      word += ch;
      inWord = true;
    } else if (SPACE.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new InvalidArgumentError(`unterminated quote in ${JSON.stringify(text)}`);
  if (inWord) words.push(word);
  return words;
}

/**
 * `key=value …` pairs of ENV, LABEL and ARG, raw (values not yet processed); ENV and LABEL also take
 * Docker's old form, `key value with spaces` (one pair, the value the rest of the line).
 */
export function keyValues(text: string, escape: string, legacy: boolean): [string, string | undefined][] {
  const words = splitRaw(text.trim(), escape);
  if (words.length === 0) throw new InvalidArgumentError('needs at least one argument');
  if (legacy && !words[0]!.includes('=')) {
    const key = words[0]!;
    const rest = text.trim().slice(key.length).trim();
    if (rest === '') throw new InvalidArgumentError(`${key} needs a value (key=value, or key value)`);
    return [[key, rest]];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq === 0) throw new InvalidArgumentError(`${JSON.stringify(word)} has no name`);
    if (eq < 0) {
      if (legacy) throw new InvalidArgumentError(`${JSON.stringify(word)} is not key=value`);
      return [word, undefined];
    }
    return [word.slice(0, eq), word.slice(eq + 1)];
  });
}
