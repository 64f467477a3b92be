/**
 * `--format`'s templates: Go's text/template, as docker's `--format` takes them, over JSON-shaped data
 * (see go-template-values.ts for how Go sees it: `.Name` is an object's key, `<no value>` when missing;
 * values print as `fmt.Print` prints them). Actions: pipelines with `|`, parentheses, variables
 * (`$x := …`, `$x = …`, `$`), `if`/`else if`/`else`, `range` (with `$i, $v :=`, `else`, `break`,
 * `continue`), `with`, comments and `{{-`/`-}}` trimming. Functions: Go's `and`, `or`, `not`, `len`,
 * `index`, `print`, `printf`, `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, and docker's `json`, `join`,
 * `split`, `lower`, `upper`, `title`, `pad`, `truncate`. Not taken: `define`, `template`, `block`.
 * Comparisons take an integer and a float alike, where Go refuses to compare an int with a float64.
 */
import { fields, FUNCTIONS, GoFloat, isObject, NO_VALUE, printValue, sortedKeys, TemplateError, truth, type Value } from './go-template-values.js';

export { TemplateError };

type Operand =
  | { readonly kind: 'dot' }
  | { readonly kind: 'field'; readonly names: readonly string[] }
  | { readonly kind: 'variable'; readonly name: string; readonly names: readonly string[] }
  | { readonly kind: 'function'; readonly name: string }
  | { readonly kind: 'constant'; readonly value: Value }
  | { readonly kind: 'pipe'; readonly pipe: Pipeline; readonly names: readonly string[] };

interface Pipeline {
  /** Variables it declares (`:=`) or assigns (`=`). */
  readonly variables: readonly string[];
  readonly assign: boolean;
  readonly commands: readonly (readonly Operand[])[];
}

/** `if`, `with` and `range`: the body, and what `else` gives. */
interface Control {
  readonly kind: 'if' | 'with' | 'range';
  readonly pipe: Pipeline;
  readonly body: Node[];
  readonly otherwise: Node[] | undefined;
}

type Node = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'print'; readonly pipe: Pipeline } | Control | { readonly kind: 'break' | 'continue' };

// ---------------------------------------------------------------------------------------------------------
// Lexing: the text between actions, and each action's tokens.

type Token =
  | { readonly t: 'field'; readonly s: string; /** Written right after the token before it (`.A.B`, `$x.A`, `(…).A`). */ readonly joined: boolean }
  | { readonly t: 'variable' | 'identifier' | 'keyword'; readonly s: string }
  | { readonly t: 'constant'; readonly v: Value }
  | { readonly t: '|' | '(' | ')' | ':=' | '=' | ',' | '.' };

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'break', 'continue', 'define', 'template', 'block', 'nil', 'true', 'false']);
const SPACE = /[ \t\r\n]/;

/** One action's tokens (the text between `{{` and `}}`, trim markers removed). */
function tokenize(source: string, at: () => string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (message: string): never => {
    throw new TemplateError(`template: ${at()}: ${message}`);
  };
  while (i < source.length) {
    const c = source[i]!;
    const joined = i > 0 && !SPACE.test(source[i - 1]!);
    if (SPACE.test(c)) {
      i++;
    } else if (c === '|' || c === '(' || c === ')' || c === ',') {
      tokens.push({ t: c });
      i++;
    } else if (c === ':' && source[i + 1] === '=') {
      tokens.push({ t: ':=' });
      i += 2;
    } else if (c === '=') {
      tokens.push({ t: '=' });
      i++;
    } else if (c === '"' || c === '`') {
      const end = c === '`' ? source.indexOf('`', i + 1) : quotedEnd(source, i);
      if (end < 0) fail('unterminated quoted string');
      tokens.push({ t: 'constant', v: c === '`' ? source.slice(i + 1, end) : unquote(source.slice(i, end + 1), fail) });
      i = end + 1;
    } else if (c === '.' || c === '$') {
      const name = /^[\p{L}_][\p{L}\p{Nd}_]*/u.exec(source.slice(i + 1))?.[0] ?? '';
      if (c === '.' && name === '') {
        if (/[0-9]/.test(source[i + 1] ?? '')) {
          const number = numberAt(source, i, fail);
          tokens.push({ t: 'constant', v: number.value });
          i = number.end;
          continue;
        }
        tokens.push({ t: '.' });
      } else tokens.push(c === '.' ? { t: 'field', s: name, joined } : { t: 'variable', s: `$${name}` });
      i += 1 + name.length;
    } else if (/[0-9+-]/.test(c)) {
      const number = numberAt(source, i, fail);
      tokens.push({ t: 'constant', v: number.value });
      i = number.end;
    } else if (/[\p{L}_]/u.test(c)) {
      const word = /^[\p{L}_][\p{L}\p{Nd}_]*/u.exec(source.slice(i))![0];
      tokens.push(KEYWORDS.has(word) ? { t: 'keyword', s: word } : { t: 'identifier', s: word });
      i += word.length;
    } else if (c === "'") {
      fail('character constants are not taken');
    } else {
      fail(`unexpected ${JSON.stringify(c)} in command`);
    }
  }
  return tokens;
}

/** Where the double-quoted string starting at `start` ends (its closing quote), or -1. */
function quotedEnd(source: string, start: number): number {
  for (let i = start + 1; i < source.length; i++) {
    if (source[i] === '\\') i++;
    else if (source[i] === '"') return i;
    else if (source[i] === '\n') return -1;
  }
  return -1;
}

/** A Go double-quoted string's value. */
function unquote(quoted: string, fail: (message: string) => never): string {
  const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };
  let out = '';
  const bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) out += Buffer.from(bytes.splice(0)).toString('utf8');
  };
  for (let i = 1; i < quoted.length - 1; i++) {
    const c = quoted[i]!;
    if (c !== '\\') {
      flush();
      out += c;
      continue;
    }
    const e = quoted[++i]!;
    if (e in simple) {
      flush();
      out += simple[e];
    } else if (e === 'x' || /[0-7]/.test(e)) {
      const digits = e === 'x' ? quoted.slice(i + 1, i + 3) : quoted.slice(i, i + 3);
      if (!(e === 'x' ? /^[0-9a-fA-F]{2}$/ : /^[0-3][0-7]{2}$/).test(digits)) fail(`invalid syntax: ${quoted}`);
      bytes.push(parseInt(digits, e === 'x' ? 16 : 8));
      i += 2; // to the last digit (hex: past `x`; octal: `e` was the first)
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const digits = quoted.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(digits)) fail(`invalid syntax: ${quoted}`);
      const code = parseInt(digits, 16);
      if (code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) fail(`invalid syntax: ${quoted}`);
      flush();
      out += String.fromCodePoint(code);
      i += n;
    } else {
      fail(`invalid syntax: ${quoted}`);
    }
  }
  flush();
  return out;
}

/** A Go numeric constant at `start`: an integer (decimal, 0x, 0o, 0b, _ separators) or a float. */
function numberAt(source: string, start: number, fail: (message: string) => never): { value: number | GoFloat; end: number } {
  const text = /^[+-]?(?:0[xXoObB][0-9a-fA-F_]*|[0-9_]*\.?[0-9_]*(?:[eE][+-]?[0-9_]+)?)[0-9a-zA-Z_.]*/.exec(source.slice(start))![0];
  const plain = text.replace(/_/g, '');
  const sign = plain.startsWith('-') ? -1 : 1;
  const digits = plain.replace(/^[+-]/, '');
  let value: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(digits)) value = parseInt(digits.slice(2), 16);
  else if (/^0[oO]?[0-7]+$/.test(digits)) value = parseInt(digits.replace(/^0[oO]?/, ''), 8);
  else if (/^0[bB][01]+$/.test(digits)) value = parseInt(digits.slice(2), 2);
  else if (/^(0|[1-9][0-9]*)$/.test(digits)) value = Number(digits);
  else if (/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(digits)) return { value: new GoFloat(sign * Number(digits)), end: start + text.length };
  else return fail(`bad number syntax: ${JSON.stringify(text)}`);
  return { value: sign * value, end: start + text.length };
}

// ---------------------------------------------------------------------------------------------------------
// Parsing.

/** Parses `text` once; run the result on each datum. Throws TemplateError. */
export function parseTemplate(text: string): (data: Value) => string {
  const nodes = new Parser(text).parse();
  return (data) => {
    const out: string[] = [];
    // Go runs on a nil datum as on no value at all.
    const root = data === null ? NO_VALUE : data;
    new Executor(root, out).run(nodes, root);
    return out.join('');
  };
}

class Parser {
  readonly #text: string;
  /** Actions, in order: the text before each and its tokens. */
  readonly #items: Array<{ text: string } | { tokens: Token[]; line: number }> = [];
  #next = 0;
  /** The variables declared where the parse is, as Go's parser tracks them: using another is an error. */
  readonly #scope: string[] = ['$'];

  constructor(text: string) {
    this.#text = text;
    let i = 0;
    let trimNext = false;
    let line = 1;
    for (;;) {
      const open = text.indexOf('{{', i);
      let before = text.slice(i, open < 0 ? undefined : open);
      if (trimNext) before = before.replace(/^[ \t\r\n]+/, '');
      if (open < 0) {
        if (before !== '') this.#items.push({ text: before });
        break;
      }
      let start = open + 2;
      if (text[start] === '-' && SPACE.test(text[start + 1] ?? '')) {
        before = before.replace(/[ \t\r\n]+$/, '');
        start += 2;
      }
      if (before !== '') this.#items.push({ text: before });
      for (let k = i; k < open; k++) if (text.charCodeAt(k) === 10) line++;
      const close = this.#closing(start, line);
      let end = close;
      trimNext = false;
      if (text[close - 1] === '-' && SPACE.test(text[close - 2] ?? '')) {
        end = close - 2;
        trimNext = true;
      }
      const inner = text.slice(start, end);
      const trimmed = inner.trim();
      if (trimmed.startsWith('/*')) {
        if (!trimmed.endsWith('*/') || trimmed.length < 4) throw new TemplateError(`template: :${line}: unclosed comment`);
      } else {
        this.#items.push({ tokens: tokenize(inner, () => `:${line}`), line });
      }
      for (let k = open; k < close; k++) if (text.charCodeAt(k) === 10) line++;
      i = close + 2;
    }
  }

  /** Where the action opened before `start` closes (`}}` outside quotes). */
  #closing(start: number, line: number): number {
    const text = this.#text;
    for (let i = start; i < text.length; i++) {
      const c = text[i];
      if (c === '"') {
        const end = quotedEnd(text, i);
        if (end < 0) break;
        i = end;
      } else if (c === '`') {
        const end = text.indexOf('`', i + 1);
        if (end < 0) break;
        i = end;
      } else if (c === '/' && text[i + 1] === '*') {
        const end = text.indexOf('*/', i + 2);
        if (end < 0) break;
        i = end + 1;
      } else if (c === '}' && text[i + 1] === '}') return i;
    }
    throw new TemplateError(`template: :${line}: unclosed action`);
  }

  parse(): Node[] {
    const { nodes, end } = this.#list(0);
    if (end !== undefined) throw new TemplateError(`template: :${end.line}: unexpected {{${end.word}}}`);
    return nodes;
  }

  /** Nodes up to an `end` or `else` (returned, with the tokens after `else`), or the end of the text. */
  #list(depth: number, inRange = false): { nodes: Node[]; end?: { word: 'end' | 'else'; rest: Token[]; line: number } } {
    const nodes: Node[] = [];
    while (this.#next < this.#items.length) {
      const item = this.#items[this.#next++]!;
      if ('text' in item) {
        nodes.push({ kind: 'text', text: item.text });
        continue;
      }
      const { tokens, line } = item;
      const at = `:${line}`;
      const first = tokens[0];
      if (first === undefined) throw new TemplateError(`template: ${at}: missing value for command`);
      if (first.t === 'keyword') {
        const word = first.s;
        if (word === 'end' || word === 'else') {
          if (depth === 0) throw new TemplateError(`template: ${at}: unexpected {{${word}}}`);
          if (word === 'end' && tokens.length > 1) throw new TemplateError(`template: ${at}: unexpected ${describe(tokens[1]!)} in end`);
          return { nodes, end: { word, rest: tokens.slice(1), line } };
        }
        if (word === 'if' || word === 'with' || word === 'range') {
          nodes.push(this.#control(word, tokens.slice(1), line, depth, inRange));
          continue;
        }
        if (word === 'break' || word === 'continue') {
          if (!inRange) throw new TemplateError(`template: ${at}: {{${word}}} outside {{range}}`);
          if (tokens.length > 1) throw new TemplateError(`template: ${at}: unexpected ${describe(tokens[1]!)} in {{${word}}}`);
          nodes.push({ kind: word });
          continue;
        }
        if (word === 'define' || word === 'template' || word === 'block') throw new TemplateError(`template: ${at}: {{${word}}} is not taken by strata's --format`);
      }
      nodes.push({ kind: 'print', pipe: pipeline(tokens, at, true, this.#scope) });
    }
    return { nodes };
  }

  #control(word: 'if' | 'with' | 'range', tokens: Token[], line: number, depth: number, inRange: boolean): Node {
    const at = `:${line}`;
    // What the control's pipeline and lists declare is gone at its {{end}}.
    const mark = this.#scope.length;
    const pipe = pipeline(tokens, at, word === 'range' ? 'range' : true, this.#scope);
    const bodyInRange = word === 'range' || inRange;
    const body = this.#list(depth + 1, bodyInRange);
    if (body.end === undefined) throw new TemplateError(`template: ${at}: unexpected EOF`);
    let otherwise: Node[] | undefined;
    if (body.end.word === 'else') {
      const rest = body.end.rest;
      if (rest.length > 0 && rest[0]!.t === 'keyword' && (rest[0] as { s: string }).s === 'if' && word === 'if') {
        // `{{else if x}}` is `{{else}}{{if x}}…{{end}}`, sharing the outer `{{end}}`.
        otherwise = [this.#control('if', rest.slice(1), body.end.line, depth, inRange)];
      } else {
        if (rest.length > 0) throw new TemplateError(`template: :${body.end.line}: unexpected ${describe(rest[0]!)} in else`);
        const tail = this.#list(depth + 1, inRange);
        if (tail.end?.word !== 'end') throw new TemplateError(`template: ${at}: ${tail.end ? 'expected end; found {{else}}' : 'unexpected EOF'}`);
        otherwise = tail.nodes;
      }
    }
    this.#scope.length = mark;
    return { kind: word, pipe, body: body.nodes, otherwise };
  }
}

function describe(token: Token): string {
  if ('s' in token) return token.s;
  if (token.t === 'constant') return JSON.stringify(token.v);
  return `"${token.t}"`;
}

/**
 * A pipeline of `tokens`; `declare` says whether it may declare variables (`range` two), which join `scope`
 * (the variables it may use).
 */
function pipeline(tokens: Token[], at: string, declare: boolean | 'range', scope: string[]): Pipeline {
  const fail = (message: string): never => {
    throw new TemplateError(`template: ${at}: ${message}`);
  };
  let variables: string[] = [];
  let assign = false;
  // `$x :=`, `$x =`, and for range `$i, $v :=`.
  const decl = tokens.findIndex((t) => t.t === ':=' || t.t === '=');
  if (decl > 0 && declare !== false) {
    const names = tokens.slice(0, decl);
    const ok = names.length === 1 ? names[0]!.t === 'variable' : declare === 'range' && names.length === 3 && names[0]!.t === 'variable' && names[1]!.t === ',' && names[2]!.t === 'variable';
    if (ok) {
      variables = names.filter((t) => t.t === 'variable').map((t) => (t as { s: string }).s);
      assign = tokens[decl]!.t === '=';
      tokens = tokens.slice(decl + 1);
      for (const name of variables) {
        if (!assign) scope.push(name);
        else if (!scope.includes(name)) fail(`undefined variable "${name}"`);
      }
    }
  }
  const commands: Operand[][] = [];
  let i = 0;
  /** The field names written right after an operand (`.A.B`, `$x.A`, `(…).A`). */
  const chained = (): string[] => {
    const names: string[] = [];
    for (let next = tokens[i]; next?.t === 'field' && next.joined; next = tokens[++i]) names.push(next.s);
    return names;
  };
  const operand = (): Operand => {
    const token = tokens[i++]!;
    switch (token.t) {
      case 'field':
        return { kind: 'field', names: [token.s, ...chained()] };
      case 'variable':
        if (!scope.includes(token.s)) fail(`undefined variable "${token.s}"`);
        return { kind: 'variable', name: token.s, names: chained() };
      case '.':
        return { kind: 'dot' };
      case 'identifier':
        return { kind: 'function', name: token.s };
      case 'constant':
        return { kind: 'constant', value: token.v };
      case 'keyword':
        if (token.s === 'true' || token.s === 'false') return { kind: 'constant', value: token.s === 'true' };
        if (token.s === 'nil') return { kind: 'constant', value: null };
        return fail(`unexpected <${token.s}> in command`);
      case '(': {
        let depth = 1;
        const start = i;
        while (i < tokens.length && depth > 0) {
          if (tokens[i]!.t === '(') depth++;
          else if (tokens[i]!.t === ')') depth--;
          i++;
        }
        if (depth > 0) fail('unclosed left paren');
        return { kind: 'pipe', pipe: pipeline(tokens.slice(start, i - 1), at, false, scope), names: chained() };
      }
      default:
        return fail(`unexpected ${describe(token)} in operand`);
    }
  };
  let command: Operand[] = [];
  while (i < tokens.length) {
    const token = tokens[i]!;
    if (token.t === '|') {
      if (command.length === 0) fail('missing value for command');
      commands.push(command);
      command = [];
      i++;
      continue;
    }
    if (token.t === ')') fail('unexpected right paren');
    command.push(operand());
  }
  if (command.length === 0) fail(commands.length === 0 && variables.length === 0 ? 'missing value for command' : 'missing value for command');
  commands.push(command);
  for (const [k, c] of commands.entries()) {
    const head = c[0]!;
    if (head.kind === 'constant' && head.value === null) fail('nil is not a command');
    if (head.kind !== 'function' && c.length > 1) fail(`can't give argument to non-function ${describeOperand(head)}`);
    if (k > 0 && head.kind !== 'function') fail(`non executable command in pipeline stage ${k + 1}`);
  }
  return { variables, assign, commands };
}

function describeOperand(operand: Operand): string {
  switch (operand.kind) {
    case 'dot':
      return '.';
    case 'field':
      return `.${operand.names.join('.')}`;
    case 'variable':
      return [operand.name, ...operand.names].join('.');
    case 'constant':
      return operand.value instanceof GoFloat ? String(operand.value.value) : JSON.stringify(operand.value);
    case 'function':
      return operand.name;
    case 'pipe':
      return '(...)';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Running.

class Break {}
class Continue {}

class Executor {
  readonly #out: string[];
  /** Variables in scope, innermost last. */
  readonly #vars: Array<[string, Value]>;

  constructor(root: Value, out: string[]) {
    this.#out = out;
    this.#vars = [['$', root]];
  }

  run(nodes: readonly Node[], dot: Value): void {
    const mark = this.#vars.length;
    try {
      for (const node of nodes) this.#node(node, dot);
    } finally {
      this.#vars.length = mark;
    }
  }

  #node(node: Node, dot: Value): void {
    switch (node.kind) {
      case 'text':
        this.#out.push(node.text);
        return;
      case 'print': {
        const value = this.#pipe(node.pipe, dot);
        // A nil the data holds prints as a missing key does: Go sees no value behind the nil interface.
        if (node.pipe.variables.length === 0) this.#out.push(value === null ? '<no value>' : printValue(value));
        return;
      }
      case 'break':
        throw new Break();
      case 'continue':
        throw new Continue();
      case 'if':
      case 'with': {
        const mark = this.#vars.length;
        const value = this.#pipe(node.pipe, dot);
        if (truth(value)) this.run(node.body, node.kind === 'with' ? value : dot);
        else if (node.otherwise) this.run(node.otherwise, dot);
        this.#vars.length = mark;
        return;
      }
      case 'range':
        this.#range(node, dot);
    }
  }

  #range(node: Control, dot: Value): void {
    const mark = this.#vars.length;
    const value = this.#pipe({ ...node.pipe, variables: [] }, dot);
    const names = node.pipe.variables;
    const each: Array<[Value, Value]> = [];
    if (Array.isArray(value)) value.forEach((v, i) => each.push([i, v]));
    else if (isObject(value)) for (const key of sortedKeys(value)) each.push([key, value[key]]);
    else if (value !== NO_VALUE && value !== null) throw new TemplateError(`template: range can't iterate over ${printValue(value)}`);
    for (const [key, element] of each) {
      this.#vars.length = mark;
      if (names.length === 1) this.#vars.push([names[0]!, element]);
      if (names.length === 2) this.#vars.push([names[0]!, key], [names[1]!, element]);
      try {
        this.run(node.body, element);
      } catch (signal) {
        if (signal instanceof Break) break;
        if (!(signal instanceof Continue)) throw signal;
      }
    }
    this.#vars.length = mark;
    if (each.length === 0 && node.otherwise) this.run(node.otherwise, dot);
  }

  #pipe(pipe: Pipeline, dot: Value): Value {
    let value: Value = NO_VALUE;
    let piped = false;
    for (const command of pipe.commands) {
      value = this.#command(command, dot, piped ? value : NO_VALUE, piped);
      piped = true;
    }
    if (pipe.variables.length > 0) {
      const name = pipe.variables[0]!;
      if (pipe.assign) {
        const slot = this.#vars.findLast(([n]) => n === name);
        if (slot === undefined) throw new TemplateError(`template: undefined variable: ${name}`);
        slot[1] = value;
      } else {
        this.#vars.push([name, value]);
      }
    }
    return value;
  }

  #command(command: readonly Operand[], dot: Value, final: Value, piped: boolean): Value {
    const head = command[0]!;
    if (head.kind !== 'function') return this.#operand(head, dot);
    const args = command.slice(1);
    const name = head.name;
    // and, or: evaluated lazily, as Go 1.18 does.
    if (name === 'and' || name === 'or') {
      const all: Array<() => Value> = args.map((a) => () => this.#operand(a, dot));
      if (piped) all.push(() => final);
      if (all.length === 0) throw new TemplateError(`template: wrong number of args for ${name}: want at least 1 got 0`);
      let value: Value = NO_VALUE;
      for (const get of all) {
        value = get();
        if (truth(value) === (name === 'or')) return value;
      }
      return value;
    }
    const fn = FUNCTIONS[name];
    if (fn === undefined) throw new TemplateError(`template: function "${name}" not defined`);
    const values = args.map((a) => this.#operand(a, dot));
    if (piped) values.push(final);
    // A missing key reaches a function as nil, as Go hands it the zero value of the parameter's type.
    return fn(values.map((v) => (v === NO_VALUE ? null : v)), name);
  }

  #operand(operand: Operand, dot: Value): Value {
    switch (operand.kind) {
      case 'dot':
        return dot;
      case 'constant':
        return operand.value;
      case 'field':
        return fields(dot, operand.names);
      case 'variable': {
        const slot = this.#vars.findLast(([n]) => n === operand.name);
        if (slot === undefined) throw new TemplateError(`template: undefined variable: ${operand.name}`);
        return fields(slot[1], operand.names);
      }
      case 'pipe':
        return fields(this.#pipe(operand.pipe, dot), operand.names);
      case 'function':
        return this.#command([operand], dot, NO_VALUE, false);
    }
  }
}
