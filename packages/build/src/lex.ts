/**
 * Docker's word processing for Dockerfile arguments: quotes, the escape character, and variable expansion, as
 * the Dockerfile frontend does it before a step runs (the shell does its own for RUN, CMD and ENTRYPOINT in
 * shell form, which are never expanded here).
 *
 * - Outside quotes the escape character (`\`, or `` ` `` by directive) takes the next character literally.
 * - Single quotes take everything literally up to the next single quote.
 * - Double quotes allow expansion; inside them the escape character escapes only `"`, `$` and itself.
 * - `$name` and `${name}`; `${name:-word}` / `${name-word}` (the word if unset or empty / unset),
 *   `${name:+word}` / `${name+word}` (the word if set and not empty / set), `${name:?message}` /
 *   `${name?message}` (an error if unset or empty / unset); and BuildKit 1.7's `${name#pattern}`,
 *   `${name##pattern}`, `${name%pattern}`, `${name%%pattern}`, `${name/pattern/replacement}` and
 *   `${name//pattern/replacement}` (see shell-pattern.ts). A word runs to the first `}` not escaped and is
 *   itself processed (quotes, escapes, expansions); in patterns and replacements the escapes are kept for the
 *   pattern to read.
 * - An unset variable is empty, and so are positional (`$1`) and special parameters (`$@`, `$#`, `$$`…): a
 *   build has none. `$` followed by neither a name, digits, a special parameter nor `{` is a literal `$`.
 * - Splitting into words (`processWords`) happens on unquoted whitespace, including whitespace a variable's
 *   value brings outside quotes; quotes are removed.
 */
import { replacePattern, trimPrefix, trimSuffix, WordError } from './shell-pattern.js';

export { WordError };

/** Variables visible to a step, name → value. */
export type Env = ReadonlyMap<string, string>;

const SPACE = /\s/;
const DIGITS = /\p{Nd}+/uy;
const NAME = /[\p{L}_][\p{L}\p{Nd}_]*/uy;
const SPECIAL_PARAMETERS = '@*#?-$!';

class Lexer {
  #at = 0;
  readonly #words: string[] = [];
  #word = '';
  #inWord = false;
  /** Escapes kept in the text they escape (a pattern's or replacement's word, which the pattern reads). */
  #rawEscapes = false;

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
        this.#add(this.#single());
        continue;
      }
      if (ch === '"' && !this.rawQuotes) {
        this.#add(this.#double());
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

  #single(): string {
    const close = this.text.indexOf("'", this.#at + 1);
    if (close < 0) throw new WordError(`unterminated single quote in ${JSON.stringify(this.text)}`);
    const quoted = this.text.slice(this.#at + 1, close);
    this.#at = close + 1;
    return quoted;
  }

  #double(): string {
    const text = this.text;
    let quoted = '';
    this.#at++;
    for (;;) {
      if (this.#at >= text.length) throw new WordError(`unterminated double quote in ${JSON.stringify(text)}`);
      const ch = text[this.#at]!;
      if (ch === '"') {
        this.#at++;
        return quoted;
      }
      if (ch === '$') {
        quoted += this.#dollar();
        continue;
      }
      this.#at++;
      if (ch === this.escape) {
        if (this.#rawEscapes) quoted += ch;
        const next = text[this.#at];
        if (next === '"' || next === '$' || next === this.escape) {
          quoted += next;
          this.#at++;
          continue;
        }
      }
      quoted += ch;
    }
  }

  /** The text up to `stop` (consumed), processed but not split: the word of a `${name…}` modifier. */
  #until(stop: string, rawEscapes: boolean): string {
    const text = this.text;
    const outer = this.#rawEscapes;
    this.#rawEscapes = rawEscapes;
    try {
      let word = '';
      while (this.#at < text.length) {
        const ch = text[this.#at]!;
        if (ch === stop) {
          this.#at++;
          return word;
        }
        if (ch === '$') word += this.#dollar();
        else if (ch === "'" && !this.rawQuotes) word += this.#single();
        else if (ch === '"' && !this.rawQuotes) word += this.#double();
        else {
          this.#at++;
          if (ch === this.escape) {
            if (rawEscapes) word += ch;
            if (this.#at >= text.length) break;
            word += text[this.#at++]!;
          } else word += ch;
        }
      }
      throw new WordError(`missing ${stop} in ${JSON.stringify(text)}`);
    } finally {
      this.#rawEscapes = outer;
    }
  }

  /** A parameter's name at the cursor: digits, one special parameter's character, or a name; '' if none. */
  #name(): string {
    const text = this.text;
    for (const pattern of [DIGITS, NAME]) {
      pattern.lastIndex = this.#at;
      const match = pattern.exec(text);
      if (match) {
        this.#at += match[0].length;
        return match[0];
      }
    }
    if (this.#at < text.length && SPECIAL_PARAMETERS.includes(text[this.#at]!)) return text[this.#at++]!;
    return '';
  }

  /** At a `$`: the expansion, or a literal `$`. */
  #dollar(): string {
    const text = this.text;
    this.#at++;
    if (text[this.#at] !== '{') {
      const name = this.#name();
      return name === '' ? '$' : (this.env.get(name) ?? '');
    }
    this.#at++;
    if (this.#at >= text.length) throw new WordError(`missing } in ${JSON.stringify(text)}`);
    if ('{}:'.includes(text[this.#at]!)) throw new WordError(`bad substitution in ${JSON.stringify(text)}`);
    const name = this.#name();
    const value = this.env.get(name);
    let modifier = text[this.#at++];
    if (modifier === undefined) throw new WordError(`missing } in ${JSON.stringify(text)}`);
    if (modifier === '}') return value ?? '';
    if (modifier === '/') {
      const all = text[this.#at] === '/';
      if (all) this.#at++;
      const pattern = this.#until('/', true);
      const replacement = this.#until('}', true);
      return replacePattern(value ?? '', pattern, replacement, all);
    }
    // `:` makes an empty value count as unset, for -, + and ? only.
    const emptyIsUnset = modifier === ':';
    if (emptyIsUnset) modifier = text[this.#at++] ?? '';
    const trims = modifier === '#' || modifier === '%';
    if (!'-+?#%'.includes(modifier) || modifier === '' || (emptyIsUnset && trims)) {
      throw new WordError(`unsupported modifier ${JSON.stringify((emptyIsUnset ? ':' : '') + modifier)} in ${JSON.stringify(text)}`);
    }
    let word = this.#until('}', trims);
    const unset = value === undefined || (emptyIsUnset && value === '');
    switch (modifier) {
      case '-':
        return unset ? word : value!;
      case '+':
        return unset ? '' : word;
      case '?':
        if (unset) throw new WordError(`${name}: ${word || (value === undefined ? 'is not allowed to be unset' : 'is not allowed to be empty')}`);
        return value!;
      default: {
        const greedy = word.startsWith(modifier);
        if (greedy) word = word.slice(1);
        return modifier === '#' ? trimPrefix(word, value ?? '', greedy) : trimSuffix(word, value ?? '', greedy);
      }
    }
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
  if (quote !== undefined) throw new WordError(`unterminated quote in ${JSON.stringify(text)}`);
  if (inWord) words.push(word);
  return words;
}

/**
 * `key=value …` pairs of ENV, LABEL and ARG, raw (values not yet processed); ENV and LABEL also take
 * Docker's old form, `key value with spaces` (one pair, the value the rest of the line).
 */
export function keyValues(text: string, escape: string, legacy: boolean): [string, string | undefined][] {
  const words = splitRaw(text.trim(), escape);
  if (words.length === 0) throw new WordError('needs at least one argument');
  if (legacy && !words[0]!.includes('=')) {
    const key = words[0]!;
    const rest = text.trim().slice(key.length).trim();
    if (rest === '') throw new WordError(`${key} needs a value (key=value, or key value)`);
    return [[key, rest]];
  }
  return words.map((word) => {
    const eq = word.indexOf('=');
    if (eq === 0) throw new WordError(`${JSON.stringify(word)} has no name`);
    if (eq < 0) {
      if (legacy) throw new WordError(`${JSON.stringify(word)} is not key=value`);
      return [word, undefined];
    }
    return [word.slice(0, eq), word.slice(eq + 1)];
  });
}
