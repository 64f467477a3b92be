/**
 * `--format` as docker's listings take it: `json` (each row as one JSON object), `table` (docker's columns,
 * or `table TEMPLATE`: a header row, then the rows, aligned as Go's tabwriter aligns them), or a template
 * run once per row. `\t` and `\n` written as two characters stand for a tab and a newline, as docker reads
 * them from a shell.
 */
import { parseTemplate, TemplateError } from './go-template.js';
import { asStruct } from './go-template-values.js';
import { sanitize, UsageError } from './format.js';

/** What a listing gives `formatRows`. */
export interface RowFormat {
  /** The rows, by docker's field names. */
  readonly rows: readonly Record<string, unknown>[];
  /** Each field's column header, for `table`. */
  readonly headers: Readonly<Record<string, string>>;
  /** The template `table` alone stands for (docker's default columns). */
  readonly table: string;
  /**
   * The rows' type, for a listing whose rows are docker's typed ones: a field they lack is then an error
   * naming it, where a map's missing key prints `<no value>` (as `inspect`'s JSON does).
   */
  readonly type?: string;
}

/** The listing in `format`, each row ending in a newline. Throws UsageError for a template that does not parse or run. */
export function formatRows(format: string, { rows, headers, table, type }: RowFormat): string {
  const isTable = format.startsWith('table');
  let text = format === 'json' ? '{{json .}}' : isTable ? format.slice('table'.length) : format;
  text = text.replace(/^ +| +$/g, '');
  if (isTable && text === '') text = table;
  text = text.replaceAll('\\t', '\t').replaceAll('\\n', '\n');
  try {
    const run = parseTemplate(text);
    const lines = rows.map((row) => `${run(type === undefined ? row : asStruct({ ...row }, type))}\n`);
    return isTable ? tabwrite(`${run(headers)}\n${lines.join('')}`) : lines.join('');
  } catch (error) {
    if (error instanceof TemplateError) throw new UsageError(`--format: ${error.message}`);
    throw error;
  }
}

/**
 * `value` with every string in it (keys too) made safe for a terminal as `sanitize` makes a message: what an
 * image's config holds reaches the screen through a template, which is the caller's own and keeps its tabs
 * and newlines.
 */
export function terminalSafe(value: unknown): unknown {
  if (typeof value === 'string') return sanitize(value);
  if (Array.isArray(value)) return value.map(terminalSafe);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [sanitize(k), terminalSafe(v)]));
  return value;
}

/**
 * Text aligned as Go's `tabwriter.NewWriter(w, minWidth, 1, padding, ' ', 0)` aligns it (docker's tables: 10
 * and 3): each tab-terminated cell padded to its column's widest plus `padding`, at least `minWidth`, a
 * column running over the consecutive lines that have it; the text after a line's last tab is not padded.
 */
export function tabwrite(text: string, { minWidth = 10, padding = 3 }: { minWidth?: number; padding?: number } = {}): string {
  const lines = text.split('\n').map((line) => line.split('\t'));
  // A last line without its newline ends with the cell being written, which Go's Flush keeps only if it
  // holds something: after a final tab, the cell before it is that line's last.
  const last = lines.at(-1)!;
  if (last.length > 1 && last.at(-1) === '') last.pop();
  const out: string[] = [];
  const widths: number[] = [];
  const width = (cell: string) => [...cell].length;
  const writeLines = (from: number, to: number) => {
    for (let l = from; l < to; l++) {
      const cells = lines[l]!;
      out.push(cells.map((cell, j) => (j < widths.length ? cell + ' '.repeat(widths[j]! - width(cell)) : cell)).join(''));
    }
  };
  // Go's format(): a column block is the run of lines with a cell in the current column.
  const format = (line0: number, line1: number) => {
    const column = widths.length;
    let l = line0;
    for (let i = line0; i < line1; i++) {
      if (column >= lines[i]!.length - 1) continue;
      writeLines(l, i);
      let w = minWidth;
      let end = i;
      for (; end < line1 && column < lines[end]!.length - 1; end++) w = Math.max(w, width(lines[end]![column]!) + padding);
      widths.push(w);
      format(i, end);
      widths.pop();
      l = end;
      i = end - 1;
    }
    writeLines(l, line1);
  };
  format(0, lines.length);
  return out.join('\n');
}

/** A past time as docker says it (`units.HumanDuration` + " ago"); N/A for none. */
export function createdSince(created: Date | undefined, now = Date.now()): string {
  if (created === undefined) return 'N/A';
  const seconds = Math.floor((now - created.getTime()) / 1000);
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(seconds / 3600 + 0.5);
  let text: string;
  if (seconds < 1) text = 'Less than a second';
  else if (seconds === 1) text = '1 second';
  else if (seconds < 60) text = `${seconds} seconds`;
  else if (minutes === 1) text = 'About a minute';
  else if (minutes < 60) text = `${minutes} minutes`;
  else if (hours === 1) text = 'About an hour';
  else if (hours < 48) text = `${hours} hours`;
  else if (hours < 24 * 7 * 2) text = `${Math.floor(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) text = `${Math.floor(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) text = `${Math.floor(hours / 24 / 30)} months`;
  else text = `${Math.floor(seconds / 3600 / 24 / 365)} years`;
  return `${text} ago`;
}

/** A time in whole seconds as Go's `time.Time.String` writes it in UTC (`2006-01-02 15:04:05 +0000 UTC`), as docker images' CreatedAt. */
export function goTime(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

/**
 * Bytes as docker's `units.HumanSizeWithPrecision(n, digits)` writes them: decimal units, three digits by
 * default (`12.3MB`, as `docker images` shows sizes), four as `units.HumanSize` (`docker system df`).
 */
export function dockerSize(bytes: number, digits = 3): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let size = bytes;
  let unit = 0;
  while (size >= 1000 && unit < units.length - 1) {
    size /= 1000;
    unit++;
  }
  // Go's %.3g: three significant digits, trailing zeros dropped, an exponent from 1e3 up (999.9 is 1e+03).
  const [mantissa, exponent] = size.toExponential(digits - 1).split('e') as [string, string];
  const exp = Number(exponent);
  const significant = mantissa.replace(/\.?0+$/, '');
  const text = exp < -4 || exp >= digits ? `${significant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}` : String(Number(size.toPrecision(digits)));
  return `${text}${units[unit]}`;
}
