/**
 * The values a `--format` template runs on, as Go sees JSON decoded into `any` (integers as int64, other
 * numbers as float64): their truth, how `fmt` prints them, and the functions a template calls (Go's
 * builtins and docker's).
 */

/** A template that does not parse or cannot run on its data; the message says where, as Go's does. */
export class TemplateError extends Error {}

export type Value = unknown;

/** A missing key's value: prints `<no value>`, as Go's invalid value does. */
export const NO_VALUE = Symbol('no value');

/** A template's float constant (`1.5`, `1e6`): a float64 to Go, printed as one (`1e+06`). */
export class GoFloat {
  constructor(readonly value: number) {}
}

/** A JSON object: a Go map to the template. */
export function isObject(value: Value): value is Record<string, Value> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof GoFloat);
}

/** An object's keys in Go's map order (bytewise). */
export function sortedKeys(value: Record<string, Value>): string[] {
  return Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Marks a row whose fields are fixed, as a Go struct's are: its type's name, for the error a missing field gets. */
const STRUCT = Symbol('struct');

/**
 * `row` as a Go struct of type `type` to a template: a field it lacks is an error, as docker's listings'
 * typed rows make a mistyped `{{.Repo}}`, where a map's missing key is `<no value>`.
 */
export function asStruct<T extends Record<string, unknown>>(row: T, type: string): T {
  return Object.defineProperty(row, STRUCT, { value: type, enumerable: false });
}

/** The value of `.A.B…` on `value`: a map's missing key's is missing, and so are its fields. */
export function fields(value: Value, names: readonly string[]): Value {
  for (const name of names) {
    if (value === NO_VALUE) continue; // a field of a missing key is missing too
    if (value === null) throw new TemplateError(`template: nil pointer evaluating interface {}.${name}`);
    if (!isObject(value)) throw new TemplateError(`template: can't evaluate field ${name} in type ${goType(value)}`);
    if (Object.hasOwn(value, name)) value = value[name];
    else if (STRUCT in value) throw new TemplateError(`template: can't evaluate field ${name} in type ${(value as { [STRUCT]: string })[STRUCT]}`);
    else value = NO_VALUE;
  }
  return value;
}

function goType(value: Value): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (value === null || value === NO_VALUE) return '<nil>';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'int64' : 'float64';
  if (value instanceof GoFloat) return 'float64';
  if (Array.isArray(value)) return '[]interface {}';
  return 'interface {}';
}

/** Go's truth: false, 0, nil and empty strings, arrays and maps are false. */
export function truth(value: Value): boolean {
  if (value === NO_VALUE || value === null || value === false || value === '' || value === 0) return false;
  if (value instanceof GoFloat) return value.value !== 0;
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return true;
}

/** `fmt.Print`'s form of a value: `[a b]`, `map[k:v]`, `<nil>`, integers in decimal, other numbers as a float64. */
export function printValue(value: Value): string {
  if (value === NO_VALUE) return '<no value>';
  if (value === null) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : goFloat(value);
  if (typeof value === 'boolean') return String(value);
  if (value instanceof GoFloat) return goFloat(value.value);
  if (Array.isArray(value)) return `[${value.map(printValue).join(' ')}]`;
  if (isObject(value)) return `map[${sortedKeys(value).map((k) => `${k}:${printValue(value[k])}`).join(' ')}]`;
  return String(value);
}

/** A float64 as `%v` prints it: the shortest digits, with an exponent below 1e-4 and from 1e6 up. */
function goFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa, exponent] = x.toExponential().split('e') as [string, string];
  const exp = Number(exponent);
  if (exp < -4 || exp >= 6) return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return x.toString();
}

// ---------------------------------------------------------------------------------------------------------
// Functions.

type Fn = (args: Value[], name: string) => Value;

function arity(name: string, args: Value[], count: number): void {
  if (args.length !== count) throw new TemplateError(`template: wrong number of args for ${name}: want ${count} got ${args.length}`);
}

function stringArg(name: string, value: Value): string {
  if (typeof value !== 'string') throw new TemplateError(`template: ${name}: wrong type for value; expected string; got ${goType(value)}`);
  return value;
}

function intArg(name: string, value: Value): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new TemplateError(`template: ${name}: wrong type for value; expected int; got ${goType(value)}`);
  return value;
}

/** Comparable scalars: strings, numbers (the data's and the template's), booleans. */
function scalar(value: Value, name: string): string | number | boolean {
  if (value instanceof GoFloat) return value.value;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  throw new TemplateError(`template: ${name}: ${value === NO_VALUE || value === null ? 'invalid type for comparison' : 'non-comparable type'}`);
}

function compare(name: string, a: Value, b: Value): number {
  const x = scalar(a, name);
  const y = scalar(b, name);
  if (typeof x !== typeof y) throw new TemplateError(`template: ${name}: incompatible types for comparison`);
  if (typeof x === 'boolean') {
    if (name !== 'eq' && name !== 'ne') throw new TemplateError(`template: ${name}: invalid type for comparison`);
    return x === y ? 0 : 1;
  }
  if (typeof x === 'string') return Buffer.compare(Buffer.from(x), Buffer.from(y as string));
  return x < (y as number) ? -1 : x > (y as number) ? 1 : 0;
}

/** `eq`'s test: a nil equals only a nil (and is no error beside another type), else as `compare`. */
function equal(name: string, a: Value, b: Value): boolean {
  if (a === null || b === null) {
    if (Array.isArray(a) || isObject(a)) throw new TemplateError(`template: ${name}: non-comparable type`);
    return a === b;
  }
  return compare(name, a, b) === 0;
}

/** `fmt.Sprint`: spaces between operands when neither is a string. */
function sprint(args: Value[]): string {
  let out = '';
  args.forEach((arg, i) => {
    if (i > 0 && typeof arg !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += printValue(arg);
  });
  return out;
}

/** A string as Go's `%q` (strconv.Quote) writes it. */
function goQuote(s: string): string {
  let out = '"';
  for (const c of s) {
    const code = c.codePointAt(0)!;
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (code >= 0x20 && code < 0x7f) out += c;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (c === '\x07') out += '\\a';
    else if (c === '\b') out += '\\b';
    else if (c === '\f') out += '\\f';
    else if (c === '\v') out += '\\v';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code === 0xfffd && c !== '\ufffd') out += '\\ufffd';
    else if ((code >= 0x80 && code < 0xa0) || code === 0xad || code === 0x2028 || code === 0x2029 || (code >= 0xd800 && code < 0xe000)) out += code > 0xffff ? `\\U${code.toString(16).padStart(8, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

/** `%s` of a value: strings as they are, lists and maps element by element, anything else a bad verb. */
function stringVerb(value: Value): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map(stringVerb).join(' ')}]`;
  if (isObject(value)) return `map[${sortedKeys(value).map((k) => `${k}:${stringVerb(value[k])}`).join(' ')}]`;
  if (value === null || value === NO_VALUE) return '%!s(<nil>)';
  return `%!s(${goType(value)}=${printValue(value)})`;
}

/** `fmt.Sprintf` for the verbs a format line uses: %s %v %d %q %t %x %X %%, with flags `-`, `0` and a width. */
function sprintf(format: string, args: Value[]): string {
  let next = 0;
  return format.replace(/%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])/g, (_m, flags: string, width: string, precision: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (next >= args.length) return `%!${verb}(MISSING)`;
    const arg = args[next++];
    let text: string;
    switch (verb) {
      case 's':
        text = stringVerb(arg);
        if (precision !== undefined && typeof arg === 'string') text = [...text].slice(0, Number(precision)).join('');
        break;
      case 'v':
        text = printValue(arg);
        break;
      case 'q':
        if (typeof arg !== 'string') return `%!q(${goType(arg)}=${printValue(arg)})`;
        text = goQuote(arg);
        break;
      case 'd':
        if (typeof arg !== 'number' || !Number.isInteger(arg)) return `%!d(${goType(arg)}=${printValue(arg)})`;
        text = flags.includes('+') && arg >= 0 ? `+${arg}` : String(arg);
        break;
      case 't':
        if (typeof arg !== 'boolean') return `%!t(${goType(arg)}=${printValue(arg)})`;
        text = String(arg);
        break;
      case 'x':
      case 'X':
        if (typeof arg === 'string') text = Buffer.from(arg).toString('hex');
        else if (typeof arg === 'number' && Number.isInteger(arg)) text = arg.toString(16);
        else return `%!${verb}(${goType(arg)}=${printValue(arg)})`;
        if (verb === 'X') text = text.toUpperCase();
        break;
      default:
        return `%!${verb}(${goType(arg)}=${printValue(arg)})`;
    }
    const pad = Math.max(0, Number(width || 0) - [...text].length);
    if (pad === 0) return text;
    if (flags.includes('-')) return text + ' '.repeat(pad);
    if (flags.includes('0') && verb === 'd') return text.startsWith('-') || text.startsWith('+') ? text[0] + '0'.repeat(pad) + text.slice(1) : '0'.repeat(pad) + text;
    return ' '.repeat(pad) + text;
  }) + (next < args.length ? `%!(EXTRA ${args.slice(next).map((a) => `${goType(a)}=${printValue(a)}`).join(', ')})` : '');
}

/** JSON as Go's encoder writes it without HTML escaping: keys in order, U+2028 and U+2029 escaped. */
function goJson(value: Value): string {
  const sorted = (v: Value): Value => {
    if (v === NO_VALUE) return null;
    if (v instanceof GoFloat) return v.value;
    if (Array.isArray(v)) return v.map(sorted);
    if (isObject(v)) return Object.fromEntries(sortedKeys(v).map((k) => [k, sorted(v[k])]));
    return v;
  };
  return JSON.stringify(sorted(value)).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Go's `strings.Title`: each letter after a separator upper-cased. */
function goTitle(s: string): string {
  let out = '';
  let afterSeparator = true;
  for (const c of s) {
    out += afterSeparator ? c.toUpperCase() : c;
    afterSeparator = isTitleSeparator(c);
  }
  return out;
}

/** A separator for `strings.Title`: in ASCII all but letters, digits and `_`; beyond it, spaces. */
function isTitleSeparator(c: string): boolean {
  if (c.charCodeAt(0) < 0x80) return !/[A-Za-z0-9_]/.test(c);
  return /^\s$/u.test(c) && !/^[\p{L}\p{N}]$/u.test(c);
}

export const FUNCTIONS: Readonly<Record<string, Fn>> = {
  not: (args, name) => {
    arity(name, args, 1);
    return !truth(args[0]);
  },
  len: (args, name) => {
    arity(name, args, 1);
    const v = args[0];
    if (typeof v === 'string') return Buffer.byteLength(v);
    if (Array.isArray(v)) return v.length;
    if (isObject(v)) return Object.keys(v).length;
    throw new TemplateError(`template: error calling len: len of type ${goType(v)}`);
  },
  index: (args, name) => {
    if (args.length === 0) throw new TemplateError(`template: wrong number of args for ${name}: want at least 1 got 0`);
    let v = args[0];
    for (const key of args.slice(1)) {
      if (Array.isArray(v) || typeof v === 'string') {
        if (typeof key !== 'number' || !Number.isInteger(key)) throw new TemplateError('template: error calling index: cannot index slice/array with type');
        if (key < 0 || key >= (typeof v === 'string' ? Buffer.byteLength(v) : v.length)) throw new TemplateError(`template: error calling index: index out of range: ${key}`);
        v = typeof v === 'string' ? Buffer.from(v)[key]! : v[key];
      } else if (isObject(v)) {
        if (typeof key !== 'string') throw new TemplateError('template: error calling index: value has type; should be string');
        v = Object.hasOwn(v, key) ? v[key] : null; // a missing key is the element type's zero value: nil
      } else if (v === null || v === NO_VALUE) {
        throw new TemplateError('template: error calling index: index of untyped nil');
      } else {
        throw new TemplateError(`template: error calling index: can't index item of type ${goType(v)}`);
      }
    }
    return v;
  },
  print: (args) => sprint(args),
  println: (args) => `${args.map(printValue).join(' ')}\n`,
  printf: (args, name) => {
    if (args.length === 0) throw new TemplateError(`template: wrong number of args for ${name}: want at least 1 got 0`);
    return sprintf(stringArg(name, args[0]), args.slice(1));
  },
  eq: (args, name) => {
    if (args.length < 2) throw new TemplateError(`template: wrong number of args for ${name}: want at least 2 got ${args.length}`);
    return args.slice(1).some((b) => equal(name, args[0], b));
  },
  ne: (args, name) => {
    arity(name, args, 2);
    return !equal(name, args[0], args[1]);
  },
  lt: (args, name) => (arity(name, args, 2), compare(name, args[0], args[1]) < 0),
  le: (args, name) => (arity(name, args, 2), compare(name, args[0], args[1]) <= 0),
  gt: (args, name) => (arity(name, args, 2), compare(name, args[0], args[1]) > 0),
  ge: (args, name) => (arity(name, args, 2), compare(name, args[0], args[1]) >= 0),
  // docker's own (cli/templates): json, join, split, lower, upper, title, pad, truncate.
  json: (args, name) => (arity(name, args, 1), goJson(args[0])),
  join: (args, name) => {
    arity(name, args, 2);
    const list = args[0];
    if (!Array.isArray(list)) throw new TemplateError(`template: ${name}: wrong type for value; expected []string; got ${goType(list)}`);
    return list.map(printValue).join(stringArg(name, args[1]));
  },
  split: (args, name) => {
    arity(name, args, 2);
    const s = stringArg(name, args[0]);
    const sep = stringArg(name, args[1]);
    return sep === '' ? [...s] : s.split(sep);
  },
  lower: (args, name) => (arity(name, args, 1), stringArg(name, args[0]).toLowerCase()),
  upper: (args, name) => (arity(name, args, 1), stringArg(name, args[0]).toUpperCase()),
  title: (args, name) => (arity(name, args, 1), goTitle(stringArg(name, args[0]))),
  pad: (args, name) => {
    arity(name, args, 3);
    const source = stringArg(name, args[0]);
    const [before, after] = [intArg(name, args[1]), intArg(name, args[2])];
    return source === '' ? '' : `${' '.repeat(Math.max(0, before))}${source}${' '.repeat(Math.max(0, after))}`;
  },
  truncate: (args, name) => {
    arity(name, args, 2);
    const runes = [...stringArg(name, args[0])];
    const n = intArg(name, args[1]);
    return n >= 0 && runes.length > n ? runes.slice(0, n).join('') : runes.join('');
  },
};
